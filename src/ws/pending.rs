//! Sockets that have not completed `connection_init`, counted per peer address and in all,
//! so that anonymous sockets cannot pile up: each holds buffers and a task until it
//! authenticates or its init timeout ends it. A refusal says when the oldest of the
//! sockets in the way reaches that timeout: by then a place is free for sure.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The counts of one server; kept in the router as an extension (see `http::router`).
#[derive(Clone, Default)]
pub struct PendingSockets {
    counts: Arc<Mutex<Counts>>,
}

/// A pending socket: when it was admitted, and a number telling apart two admitted at
/// the same instant.
type Admitted = (Instant, u64);

#[derive(Default)]
struct Counts {
    /// Every pending socket, oldest first.
    all: BTreeSet<Admitted>,
    /// Each address's pending sockets (at most its cap, so a short list).
    per_address: HashMap<IpAddr, Vec<Admitted>>,
    next: u64,
}

/// Why a socket was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The peer address already holds its maximum.
    PerAddress(usize),
    /// The server already holds its maximum.
    Total(usize),
}

/// A refused socket: why, and how long until a place is free for sure.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub refused: Refused,
    pub retry_after: Duration,
}

impl Refused {
    /// The message told to the client.
    pub fn message(&self) -> String {
        match self {
            Refused::PerAddress(max) => format!(
                "at most {max} WebSockets per address may await connection_init; try again later"
            ),
            Refused::Total(max) => {
                format!("at most {max} WebSockets may await connection_init; try again later")
            }
        }
    }
}

impl PendingSockets {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Every update is complete under the lock, so a poisoned map is still consistent.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one more socket from `address` unless that address or the server is at its
    /// maximum; the guard gives it back when dropped. Each pending socket is gone at the
    /// latest `init_timeout` after it came, which is what a refusal's wait is taken from.
    pub fn admit(
        &self,
        address: IpAddr,
        max_per_address: usize,
        max_total: usize,
        init_timeout: Duration,
    ) -> Result<PendingGuard, Refusal> {
        // An IPv4 peer on a dual-stack listener arrives as ::ffff:a.b.c.d: count it as itself.
        let address = address.to_canonical();
        let now = Instant::now();
        let wait = |oldest: Option<&Admitted>| {
            oldest.map_or(Duration::ZERO, |(at, _)| {
                (*at + init_timeout).saturating_duration_since(now)
            })
        };
        let mut counts = self.counts();
        if counts.all.len() >= max_total {
            return Err(Refusal {
                refused: Refused::Total(max_total),
                retry_after: wait(counts.all.first()),
            });
        }
        let id = (now, counts.next);
        counts.next += 1;
        let mine = counts.per_address.entry(address).or_default();
        if mine.len() >= max_per_address {
            return Err(Refusal {
                refused: Refused::PerAddress(max_per_address),
                retry_after: wait(mine.iter().min()),
            });
        }
        mine.push(id);
        counts.all.insert(id);
        Ok(PendingGuard {
            sockets: self.clone(),
            address,
            id,
        })
    }
}

/// Holds one pending socket's count until dropped (init done, or the socket gone).
pub struct PendingGuard {
    sockets: PendingSockets,
    address: IpAddr,
    id: Admitted,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut counts = self.sockets.counts();
        counts.all.remove(&self.id);
        if let Some(mine) = counts.per_address.get_mut(&self.address) {
            mine.retain(|id| *id != self.id);
            if mine.is_empty() {
                counts.per_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_in_all_and_gives_back_on_drop() {
        let sockets = PendingSockets::default();
        let timeout = Duration::from_secs(10);
        let admit = |address| {
            sockets
                .admit(address, 2, 3, timeout)
                .map_err(|refusal| refusal.refused)
        };
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = admit(a);
        let second = admit(a);
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(admit(a).err(), Some(Refused::PerAddress(2)));
        let third = admit(b);
        assert!(third.is_ok());
        assert_eq!(admit(b).err(), Some(Refused::Total(3)));
        drop(first);
        assert!(admit(a).is_ok());
        drop((second, third));
        assert!(sockets.counts().all.is_empty());
        assert!(sockets.counts().per_address.is_empty());
    }

    #[test]
    fn a_refusal_waits_for_the_oldest_pending_socket_to_time_out() {
        let sockets = PendingSockets::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let timeout = Duration::from_secs(10);
        let _held = sockets.admit(a, 1, 8, timeout);
        let refusal = sockets.admit(a, 1, 8, timeout).err();
        assert!(
            refusal.is_some_and(|r| r.retry_after <= timeout
                && r.retry_after > Duration::from_secs(9)),
            "the wait is what is left of the held socket's init timeout"
        );
    }
}
