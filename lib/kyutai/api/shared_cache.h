// Internal: the process-wide cache behind Mimi::load_shared and Moshi::load_shared. A model is
// loaded once per key and shared while anyone holds it; the last holder releases it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace kyutai {

template <class T>
class SharedCache {
 public:
  // The cached copy for `key`, or the result of load(), kept for the next caller.
  template <class Load>
  static std::shared_ptr<const T> get(const std::string& key, Load&& load) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    if (auto existing = s.loaded[key].lock()) return existing;
    std::shared_ptr<const T> model = load();
    s.loaded[key] = model;
    return model;
  }

 private:
  struct State {
    std::mutex mutex;
    std::map<std::string, std::weak_ptr<const T>> loaded;
  };
  // One per T, whatever the loader's type.
  static State& state() {
    static State s;
    return s;
  }
};

}  // namespace kyutai
