//! [`lock`]: taking a mutex whose holder may have panicked.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, whether or not another thread panicked while holding it.
///
/// Every mutex in this workspace guards state that stays valid across a
/// panic in its critical section: a CRDT replica (every mutation is a
/// join), counters, maps updated in one step. Poisoning then says nothing
/// about the data, and refusing it would turn one panicking thread into
/// every thread that shares the lock. Use it only for state like that.
///
/// ```
/// use std::sync::Mutex;
///
/// let counter = Mutex::new(0);
/// *gossip::lock(&counter) += 1;
/// assert_eq!(*gossip::lock(&counter), 1);
/// ```
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
