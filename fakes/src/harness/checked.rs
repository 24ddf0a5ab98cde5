//! A strict fake fails the test that started it: a [`Checked`] fake panics when it is
//! dropped if the fake recorded a protocol violation the test did not take.
//!
//! Every fake records what the agent got wrong ([`FakeBuildd::violations`] and the like);
//! a test that forgets to look would pass with a broken client. So the harness hands fakes
//! out wrapped: a test that expects violations takes them ([`Checked::take_violations`]) and
//! asserts on them, and every other violation fails the test when the fake goes away.
//! [`Env`](super::Env) checks all of its fakes at once and lists every violation.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::buildd::FakeBuildd;
use crate::github::FakeGithub;
use crate::messages::FakeMessages;

/// A fake that records the protocol violations of its client.
pub trait Strict {
    /// What it stands in for, for the failure message.
    fn name(&self) -> &'static str;
    /// Everything the client got wrong so far, oldest first.
    fn violations(&self) -> Vec<String>;
}

impl Strict for FakeBuildd {
    fn name(&self) -> &'static str {
        "the fake buildd server"
    }
    fn violations(&self) -> Vec<String> {
        FakeBuildd::violations(self)
    }
}

impl Strict for FakeMessages {
    fn name(&self) -> &'static str {
        "the fake Messages API"
    }
    fn violations(&self) -> Vec<String> {
        FakeMessages::violations(self)
    }
}

impl Strict for FakeGithub {
    fn name(&self) -> &'static str {
        "the fake GitHub API"
    }
    fn violations(&self) -> Vec<String> {
        FakeGithub::violations(self)
    }
}

/// A fake whose violations fail the test when it is dropped. Derefs to the fake.
pub struct Checked<F: Strict> {
    fake: F,
    /// How many violations the test has taken; only later ones are unexpected.
    taken: AtomicUsize,
    /// Cleared once someone else (an [`Env`](super::Env)) reported for this fake.
    armed: AtomicBool,
}

impl<F: Strict> Checked<F> {
    pub fn new(fake: F) -> Checked<F> {
        Checked {
            fake,
            taken: AtomicUsize::new(0),
            armed: AtomicBool::new(true),
        }
    }

    /// The violations recorded since the last take. The test now owns them (and should
    /// assert on them): they no longer fail it.
    pub fn take_violations(&self) -> Vec<String> {
        let all = self.fake.violations();
        let seen = self.taken.swap(all.len(), Ordering::SeqCst);
        all.into_iter().skip(seen).collect()
    }

    /// The violations not taken, each prefixed with the fake's name.
    pub fn unexpected(&self) -> Vec<String> {
        let seen = self.taken.load(Ordering::SeqCst);
        self.fake
            .violations()
            .into_iter()
            .skip(seen)
            .map(|v| format!("{}: {v}", self.fake.name()))
            .collect()
    }

    /// Report now instead of on drop: returns what [`Checked::unexpected`] returns, and the
    /// drop no longer panics.
    pub(crate) fn disarm(&self) -> Vec<String> {
        self.armed.store(false, Ordering::SeqCst);
        self.unexpected()
    }
}

impl<F: Strict> Deref for Checked<F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.fake
    }
}

impl<F: Strict> Drop for Checked<F> {
    fn drop(&mut self) {
        // A test that already failed says why; a second panic would abort the run.
        if !self.armed.load(Ordering::SeqCst) || std::thread::panicking() {
            return;
        }
        fail_on(&self.unexpected());
    }
}

/// Panic listing `violations`, if there are any.
pub(crate) fn fail_on(violations: &[String]) {
    if !violations.is_empty() {
        panic!(
            "the fakes recorded protocol violations the test did not take:\n  {}",
            violations.join("\n  ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fake whose violations the test sets.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Recorder {
        fn record(&self, v: &str) {
            self.0.lock().unwrap().push(v.into());
        }
    }

    impl Strict for Recorder {
        fn name(&self) -> &'static str {
            "the recorder"
        }
        fn violations(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    fn drop_message(fake: Checked<Recorder>) -> Option<String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(fake)))
            .err()
            .map(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "non-string panic".into())
            })
    }

    #[test]
    fn a_clean_fake_drops_quietly() {
        assert_eq!(drop_message(Checked::new(Recorder::default())), None);
    }

    #[test]
    fn an_unexpected_violation_fails_on_drop_naming_the_fake() {
        let fake = Checked::new(Recorder::default());
        fake.record("claim: runner missing");
        let msg = drop_message(fake).expect("the drop panics");
        assert!(msg.contains("the recorder: claim: runner missing"), "{msg}");
    }

    #[test]
    fn taken_violations_are_the_tests_and_later_ones_still_fail() {
        let fake = Checked::new(Recorder::default());
        fake.record("first");
        assert_eq!(fake.take_violations(), ["first"]);
        assert_eq!(fake.take_violations(), Vec::<String>::new());
        fake.record("second");
        let msg = drop_message(fake).expect("the drop panics");
        assert!(msg.contains("second") && !msg.contains("first"), "{msg}");
    }

    #[test]
    fn a_disarmed_fake_leaves_the_report_to_its_owner() {
        let fake = Checked::new(Recorder::default());
        fake.record("late");
        assert_eq!(fake.disarm(), ["the recorder: late"]);
        assert_eq!(drop_message(fake), None);
    }
}
