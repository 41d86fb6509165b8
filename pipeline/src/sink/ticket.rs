//! Acceptance tracking: a submission is accepted once every sink it was routed to published it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Shared by the sinks a submission went to; the last one to publish it completes the receipt.
/// A sink that gives up (shutdown before its publishers took the batch) just drops its copy:
/// when every copy is gone without all sinks accepting, the receipt reports "not accepted".
#[derive(Debug)]
pub(crate) struct Ticket {
    remaining: AtomicUsize,
    done: Mutex<Option<oneshot::Sender<()>>>,
}

impl Ticket {
    /// A ticket waiting for `sinks` acceptances, and the receipt it completes.
    pub(crate) fn new(sinks: usize) -> (Arc<Self>, Receipt) {
        let (tx, rx) = oneshot::channel();
        let ticket = Arc::new(Self {
            remaining: AtomicUsize::new(sinks),
            done: Mutex::new(Some(tx)),
        });
        (ticket, Receipt(vec![rx]))
    }

    /// One sink published everything of this submission that reached it.
    pub(crate) fn accept(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let tx = self
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(tx) = tx {
                let _ = tx.send(());
            }
        }
    }
}

/// Resolves once every sink a submission was routed to has published it.
#[derive(Debug)]
#[must_use = "a receipt tells when the samples are safe; acknowledge the source only then"]
pub struct Receipt(Vec<oneshot::Receiver<()>>);

impl Receipt {
    /// A receipt for a submission that went to no sink: accepted at once.
    pub(crate) fn empty() -> Self {
        Self(Vec::new())
    }

    /// One receipt for several submissions (the samples and the events of one bus batch):
    /// accepted once every one of them is.
    pub fn all(receipts: impl IntoIterator<Item = Receipt>) -> Self {
        Self(receipts.into_iter().flat_map(|r| r.0).collect())
    }

    /// True when every sink accepted the submission; false when the pipeline shut down first.
    pub async fn accepted(self) -> bool {
        for rx in self.0 {
            if rx.await.is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn completes_after_every_sink() {
        let (ticket, receipt) = Ticket::new(2);
        let other = Arc::clone(&ticket);
        ticket.accept();
        let waiting = tokio::spawn(receipt.accepted());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        other.accept();
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_joined_receipt_waits_for_every_part() {
        let (a, first) = Ticket::new(1);
        let (b, second) = Ticket::new(1);
        let all = Receipt::all([first, second, Receipt::empty()]);
        a.accept();
        let waiting = tokio::spawn(all.accepted());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        b.accept();
        assert!(waiting.await.unwrap());
        let (c, refused) = Ticket::new(1);
        drop(c);
        assert!(!Receipt::all([Receipt::empty(), refused]).accepted().await);
        assert!(Receipt::all([]).accepted().await);
    }

    #[tokio::test]
    async fn dropped_without_acceptance_is_refused() {
        let (ticket, receipt) = Ticket::new(2);
        ticket.accept();
        drop(ticket);
        assert!(!receipt.accepted().await);
    }
}
