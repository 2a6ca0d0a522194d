#include "addon.h"
namespace finetorch {
void registerModel(Napi::Env, Napi::Object, Addon&) {}
void registerSerialization(Napi::Env, Napi::Object, Addon&) {}
}
