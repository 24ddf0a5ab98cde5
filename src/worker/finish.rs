//! The phases after the run: **check** (the structured output), **deliver**
//! (commit, push, pull request; or save the work so far) and **report** (the one
//! terminal update), each of which may resume the model once (`resume.rs`) and
//! go on from the new outcome: a report the server refuses with a hint comes
//! back to the model while the task still runs on the server (the link is
//! paused for the report and resumed with it).

use super::deliverable::{self, PostedArtifact};
use super::link::{LinkHandle, LinkRecord};
use super::outcome::{Delivery, Ending, Work, outcome, refused_completion};
use super::report::{Reported, Reporter};
use super::resume::{Once, Round, Why};
use super::task::ClaimedTask;
use super::{SAVING, deliver, save_progress};
use crate::git::Prepared;
use crate::runner::prompt::{OutputRequirement, TaskMode};
use crate::shutdown::{Shutdown, StopReason};

/// Where a task is between its phases: the stop that interrupted one (if any),
/// what the work gave, and what delivery gave.
pub struct Attempt {
    pub interrupted: Option<StopReason>,
    pub work: Work,
    pub delivery: Option<Delivery>,
}

/// The task's end as reported.
pub struct Concluded {
    pub ending: Ending,
    pub reported: bool,
    pub record: LinkRecord,
    pub artifacts: Vec<PostedArtifact>,
}

/// What the phases share for one task.
pub struct Phases<'a> {
    pub round: Round<'a>,
    pub task: &'a ClaimedTask,
    pub prepared: Option<&'a Prepared>,
    pub shutdown: &'a Shutdown,
}

impl Phases<'_> {
    /// An object that does not follow the task's schema never reaches the server:
    /// the model is resumed once with the errors, then the task fails with them.
    pub async fn check(
        &self,
        link: &LinkHandle,
        once: &mut Once,
        interrupted: Option<StopReason>,
        work: Work,
    ) -> (Option<StopReason>, Work) {
        if interrupted.is_some() {
            return (interrupted, work);
        }
        if !self.may_resume() {
            // Nothing here can come back to the model: its session (tools, processes) ends now.
            super::resume::forgo(&work);
        }
        let Some((error, schema)) = deliverable::structured_problem(self.task, &work) else {
            return (None, work);
        };
        let why = Why::Structured { error, schema };
        match self.round.resume(link, once, work, &why).await {
            Ok((None, work)) | Err(work) => (None, deliverable::check_structured(self.task, work)),
            Ok(stopped) => stopped,
        }
    }

    /// Deliver the finished work; a `pr_required` task that changed nothing gets the
    /// model once more, then fails with the model's explanation.
    pub async fn deliver(
        &self,
        link: &LinkHandle,
        once: &mut Once,
        interrupted: Option<StopReason>,
        work: Work,
    ) -> Attempt {
        let (interrupted, delivery) = self.deliver_once(link, interrupted, &work).await;
        if interrupted.is_some() || !self.changed_nothing_for_a_pr(&work, delivery.as_ref()) {
            return Attempt {
                interrupted,
                work,
                delivery,
            };
        }
        let (interrupted, work) = match self.round.resume(link, once, work, &Why::NoChange).await {
            Ok(resumed) => resumed,
            Err(work) => {
                return Attempt {
                    interrupted,
                    work,
                    delivery,
                };
            }
        };
        let (interrupted, work) = self.check(link, once, interrupted, work).await;
        let (interrupted, mut delivery) = self.deliver_once(link, interrupted, &work).await;
        if interrupted.is_none() && self.changed_nothing_for_a_pr(&work, delivery.as_ref()) {
            let said = match &work {
                Work::Finished(done) => super::link::one_line(&done.summary, 2000),
                _ => String::new(),
            };
            delivery = Some(Delivery::Failed(format!(
                "the task requires a pull request, and the model made no change after being \
                 asked once: {}",
                if said.is_empty() {
                    "it said nothing"
                } else {
                    &said
                }
            )));
        }
        Attempt {
            interrupted,
            work,
            delivery,
        }
    }

    /// Whether anything after the run could resume the model: a schema to follow, or a
    /// deliverable the server checks on `completed`.
    fn may_resume(&self) -> bool {
        let task = &self.task.task;
        crate::runner::structured::schema_for(task).is_some()
            || matches!(
                OutputRequirement::of(task),
                OutputRequirement::PrRequired | OutputRequirement::ArtifactRequired
            )
    }

    /// Whether `work` finished a `pr_required` task, with pushes and pull requests
    /// enabled, and left nothing to commit and no pull request of the model's own.
    fn changed_nothing_for_a_pr(&self, work: &Work, delivery: Option<&Delivery>) -> bool {
        let settings = self.round.ctx.git.settings();
        let Work::Finished(done) = work else {
            return false;
        };
        OutputRequirement::of(&self.task.task) == OutputRequirement::PrRequired
            && settings.push
            && settings.pr
            && done.question.is_none()
            && done.pr_url.is_none()
            && matches!(delivery, Some(Delivery::Delivered(g)) if g.no_changes() && g.pr_url.is_none())
    }

    /// Commit, push and open the PR for finished work; save the work so far for a
    /// question or a hand-back.
    async fn deliver_once(
        &self,
        link: &LinkHandle,
        interrupted: Option<StopReason>,
        work: &Work,
    ) -> (Option<StopReason>, Option<Delivery>) {
        let (ctx, task, stop) = (self.round.ctx, self.task, self.round.stop);
        let planning = TaskMode::of(&task.task) == TaskMode::Planning;
        match (&interrupted, work, self.prepared) {
            // A question ends the attempt: its work so far is pushed for the answer's task.
            (None, Work::Finished(done), Some(p)) if !planning && done.question.is_some() => {
                link.phase(SAVING);
                (None, save_progress(ctx, task, p, work, self.shutdown).await)
            }
            (None, Work::Finished(done), Some(p)) if !planning => {
                deliver(ctx, task, p, done, link, stop).await
            }
            // A plan is its final answer: nothing the model left in the tree is committed.
            (None, Work::Finished(_), _) => (None, Some(Delivery::NotNeeded)),
            // Handed back: what the model did so far is pushed for the next attempt.
            (Some(StopReason::Shutdown), _, Some(p)) | (None, Work::Cancelled { .. }, Some(p))
                if !planning =>
            {
                link.phase(SAVING);
                let saved = save_progress(ctx, task, p, work, self.shutdown).await;
                (interrupted, saved)
            }
            _ => (interrupted, None),
        }
    }

    /// Decide the ending and report it; a completion the server refuses with a hint
    /// resumes the model once (the link serves the task again meanwhile), is
    /// delivered and reported again.
    pub async fn report(
        &self,
        reporter: &Reporter<'_>,
        mut link: LinkHandle,
        once: &mut Once,
        mut attempt: Attempt,
    ) -> Concluded {
        let mut artifacts = Vec::new();
        loop {
            // The server's word that came while the work was delivered still counts:
            // nothing is reported over a cancel or a closed worker.
            let stop = self.round.stop;
            let interrupted = attempt
                .interrupted
                .or_else(|| stop.reason().filter(StopReason::by_server));
            let (record, paused) = link.pause().await;
            let work = attempt.work.with_usage_fallback(record.usage);
            let resumable = interrupted.is_none() && paused.is_some() && once.available(&work);
            let mut ending = outcome(interrupted, work.clone(), attempt.delivery);
            let unsent = record.unsent_milestones.clone();
            if let Some(update) = &mut ending.update {
                update.append_milestones.extend(unsent.iter().cloned());
            }
            let ctx = self.round.ctx;
            let posted =
                deliverable::ensure(&ctx.client, &ctx.redactor, ctx.retry, self.task, &ending);
            artifacts.extend(posted.await);
            let (ending, message, hint) = match reporter.deliver_resumable(ending, resumable).await
            {
                Reported::Done(ending, reported) => {
                    return Concluded {
                        ending,
                        reported,
                        record,
                        artifacts,
                    };
                }
                Reported::Refused {
                    ending,
                    message,
                    hint,
                } => (ending, message, hint),
            };
            let Some(paused) = paused else {
                let reason = format!("the server refused completion: {message} (hint: {hint})");
                let (ending, reported) = reporter.deliver(refused_completion(ending, reason)).await;
                return Concluded {
                    ending,
                    reported,
                    record,
                    artifacts,
                };
            };
            link = paused.resume(unsent);
            let why = Why::Refused { message, hint };
            let (interrupted, work) = match self.round.resume(&link, once, work, &why).await {
                Ok(resumed) => resumed,
                Err(work) => (None, work),
            };
            let (interrupted, work) = self.check(&link, once, interrupted, work).await;
            attempt = self.deliver(&link, once, interrupted, work).await;
        }
    }
}
