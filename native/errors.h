// Exceptions never cross the N-API boundary raw: each becomes a JS Error with a one-line message.
#pragma once

#include <exception>
#include <string>

#include <c10/util/Exception.h>
#include <napi.h>

namespace finetorch {

// c10::Error::what() carries a multi-line C++ backtrace; users get the message alone.
inline std::string messageOf(const std::exception& error) {
  std::string message;
  if (auto* torchError = dynamic_cast<const c10::Error*>(&error)) {
    message = torchError->what_without_backtrace();
  } else {
    message = error.what();
  }
  // Some libtorch messages still append "Exception raised from ..." context: keep the first part.
  auto raised = message.find("\nException raised from");
  if (raised != std::string::npos) message.resize(raised);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

// Wraps the body of a synchronous JS-facing method.
template <typename Body>
auto guarded(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& error) {
    throw Napi::Error::New(env, messageOf(error));
  }
}

}  // namespace finetorch
