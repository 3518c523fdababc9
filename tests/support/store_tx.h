// Runs a piece of test code against a store inside one transaction, as the
// StoreWorker does (begin, the job, commit), and hands back its result.
#pragma once

#include <type_traits>

#include "store/store.h"

namespace tocsin::test {

template <typename F>
auto in_tx(store::Store& store, F f) {
  store.begin();
  if constexpr (std::is_void_v<decltype(f(store))>) {
    f(store);
    store.commit();
  } else {
    auto r = f(store);
    store.commit();
    return r;
  }
}

}  // namespace tocsin::test
