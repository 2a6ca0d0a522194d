#include "addon.h"
namespace finetorch {
void registerSerialization(Napi::Env, Napi::Object, Addon&) {}
}
