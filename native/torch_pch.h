// Precompiled for every translation unit of the addon: <torch/torch.h> alone costs ~40 s to parse.
#pragma once
#include <torch/torch.h>
#include <napi.h>
