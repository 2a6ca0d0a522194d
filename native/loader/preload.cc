// finetorch_preload.node: opens shared libraries with RTLD_GLOBAL and keeps them open, so that the
// main addon's NEEDED libtorch entries resolve to the libtorch the JS loader found (LIBTORCH, a pip
// torch, the system) instead of to whatever the dynamic linker would search for. It links nothing
// but libc: it must load where libtorch cannot be found yet. Node's own process.dlopen cannot do
// this: it closes a library that is not an addon, and libc10 is then unloaded again.
#include <dlfcn.h>
#include <node_api.h>

#include <string>

namespace {

napi_value preload(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  size_t length = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], nullptr, 0, &length) != napi_ok) {
    napi_throw_type_error(env, nullptr, "Expected a library path (string) for preload");
    return nullptr;
  }
  std::string path(length, '\0');
  napi_get_value_string_utf8(env, argv[0], path.data(), length + 1, &length);
  // The handle is deliberately never closed: the libraries live as long as the process.
  if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* why = dlerror();
    napi_throw_error(env, nullptr, why ? why : ("dlopen failed for " + path).c_str());
    return nullptr;
  }
  return nullptr;
}

napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "preload", NAPI_AUTO_LENGTH, preload, nullptr, &fn);
  napi_set_named_property(env, exports, "preload", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(finetorch_preload, init)
