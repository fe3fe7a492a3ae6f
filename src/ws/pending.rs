//! Sockets that have not completed `connection_init`, counted per peer address and in all,
//! so that anonymous sockets cannot pile up: each holds buffers and a task until it
//! authenticates or its init timeout ends it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The counts of one server; kept in the router as an extension (see `http::router`).
#[derive(Clone, Default)]
pub struct PendingSockets {
    counts: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why a socket was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The peer address already holds its maximum.
    PerAddress(usize),
    /// The server already holds its maximum.
    Total(usize),
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
    /// maximum; the guard gives it back when dropped.
    pub fn admit(
        &self,
        address: IpAddr,
        max_per_address: usize,
        max_total: usize,
    ) -> Result<PendingGuard, Refused> {
        // An IPv4 peer on a dual-stack listener arrives as ::ffff:a.b.c.d: count it as itself.
        let address = address.to_canonical();
        let mut counts = self.counts();
        if counts.total >= max_total {
            return Err(Refused::Total(max_total));
        }
        let count = counts.per_address.entry(address).or_insert(0);
        if *count >= max_per_address {
            return Err(Refused::PerAddress(max_per_address));
        }
        *count += 1;
        counts.total += 1;
        Ok(PendingGuard {
            sockets: self.clone(),
            address,
        })
    }
}

/// Holds one pending socket's count until dropped (init done, or the socket gone).
pub struct PendingGuard {
    sockets: PendingSockets,
    address: IpAddr,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut counts = self.sockets.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
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
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = sockets.admit(a, 2, 3);
        let second = sockets.admit(a, 2, 3);
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(sockets.admit(a, 2, 3).err(), Some(Refused::PerAddress(2)));
        let third = sockets.admit(b, 2, 3);
        assert!(third.is_ok());
        assert_eq!(sockets.admit(b, 2, 3).err(), Some(Refused::Total(3)));
        drop(first);
        assert!(sockets.admit(a, 2, 3).is_ok());
        drop((second, third));
        assert_eq!(sockets.counts().total, 0);
        assert!(sockets.counts().per_address.is_empty());
    }
}
