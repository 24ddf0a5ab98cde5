//! The `instructions` string of a worker update's answer, built as the real route builds it.
//!
//! Two sources, as in `apps/web/src/app/api/workers/[id]/route.ts`: (a) the latest message
//! queued by `POST /api/workers/{id}/instruct` (a newer one overwrites an undelivered one),
//! cleared when any update returns it, the final one included; and, for a mission task on a
//! non-terminal update, (b) the user's replies to the worker's mission questions and (c) up to
//! five open guidance notes of the mission. (b) and (c) are never marked delivered: they come
//! back on every non-terminal update, which is why the agent de-duplicates them. The update
//! route (`update.rs`) calls [`take_instructions`]; tests set the state through
//! [`FakeBuildd::instruct`], [`FakeBuildd::mission_reply`] and [`FakeBuildd::mission_guidance`].

use super::*;

/// How many open guidance notes the server sends (the newest first).
const GUIDANCE_LIMIT: usize = 5;

/// A mission's notes that reach its workers with their updates.
#[derive(Debug, Clone, Default)]
pub(super) struct MissionNotes {
    /// `(worker id, question title, reply)`, oldest first.
    replies: Vec<(String, String, String)>,
    /// `(title, body)` of open guidance notes, oldest first.
    guidance: Vec<(String, String)>,
}

/// The `instructions` for `worker_id`'s update with `status` (`None`: the update named none):
/// the queued message, consumed here, then the mission blocks on a non-terminal update.
pub(super) fn take_instructions(
    s: &mut Inner,
    worker_id: &str,
    mission_id: Option<&str>,
    status: Option<&str>,
) -> Option<String> {
    let queued = s.instructions.remove(worker_id);
    let terminal = matches!(status, Some("completed" | "failed"));
    let notes = match mission_id.and_then(|m| s.missions.get(m)) {
        Some(notes) if !terminal => mission_blocks(notes, worker_id),
        _ => String::new(),
    };
    let all = format!("{}{notes}", queued.unwrap_or_default());
    (!all.is_empty()).then_some(all)
}

fn mission_blocks(notes: &MissionNotes, worker_id: &str) -> String {
    let mut out = String::new();
    // The newest first, as the route orders them by `createdAt` descending.
    let replies: Vec<String> = notes
        .replies
        .iter()
        .rev()
        .filter(|(w, _, _)| w == worker_id)
        .map(|(_, q, r)| format!("- Re: \"{q}\": {r}"))
        .collect();
    if !replies.is_empty() {
        out.push_str("\n\n**USER REPLIES:**\n");
        out.push_str(&replies.join("\n"));
    }
    let guidance: Vec<String> = notes
        .guidance
        .iter()
        .rev()
        .take(GUIDANCE_LIMIT)
        .map(|(title, body)| match body.is_empty() {
            true => format!("- {title}"),
            false => format!("- {title}: {body}"),
        })
        .collect();
    if !guidance.is_empty() {
        out.push_str("\n\n**MISSION GUIDANCE:**\n");
        out.push_str(&guidance.join("\n"));
    }
    out
}

impl FakeBuildd {
    /// Queue a user's message for a worker, as the dashboard's
    /// `POST /api/workers/{id}/instruct` does: it replaces an undelivered one and is returned
    /// (then cleared) as `instructions` on the worker's next successful update. Answers the
    /// route's status: 200, `404` for an unknown worker, `400` for a completed or failed one.
    pub fn instruct(&self, worker_id: &str, message: &str) -> u16 {
        let mut s = lock(&self.state);
        let Some(w) = s.workers.iter().find(|w| w.id == worker_id) else {
            return 404;
        };
        if matches!(w.status.as_str(), "completed" | "failed") || message.is_empty() {
            return 400;
        }
        s.instructions.insert(worker_id.into(), message.into());
        200
    }

    /// The user answered `worker_id`'s mission question `question` with `reply` (a reply note
    /// to an answered `post_note` question): from now on in every non-terminal update's
    /// `instructions` of that worker, under `**USER REPLIES:**`.
    pub fn mission_reply(&self, mission_id: &str, worker_id: &str, question: &str, reply: &str) {
        lock(&self.state)
            .missions
            .entry(mission_id.into())
            .or_default()
            .replies
            .push((worker_id.into(), question.into(), reply.into()));
    }

    /// An open guidance note on the mission: from now on in every non-terminal update's
    /// `instructions` of the mission's workers, under `**MISSION GUIDANCE:**` (the newest five).
    pub fn mission_guidance(&self, mission_id: &str, title: &str, body: &str) {
        lock(&self.state)
            .missions
            .entry(mission_id.into())
            .or_default()
            .guidance
            .push((title.into(), body.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Inner {
        let mut s = Inner::default();
        s.instructions.insert("wkr_1".into(), "Use tabs.".into());
        let notes = s.missions.entry("msn_1".into()).or_default();
        notes
            .replies
            .push(("wkr_1".into(), "Which DB?".into(), "Postgres".into()));
        notes
            .replies
            .push(("wkr_2".into(), "Other's".into(), "not ours".into()));
        for i in 0..7 {
            notes.guidance.push((format!("g{i}"), String::new()));
        }
        notes
            .guidance
            .push(("Style".into(), "small commits".into()));
        s
    }

    #[test]
    fn the_message_is_consumed_once_and_the_mission_blocks_repeat() {
        let mut s = state();
        let first = take_instructions(&mut s, "wkr_1", Some("msn_1"), Some("running"));
        assert_eq!(
            first.as_deref(),
            Some(
                "Use tabs.\n\n**USER REPLIES:**\n- Re: \"Which DB?\": Postgres\
                 \n\n**MISSION GUIDANCE:**\n- Style: small commits\n- g6\n- g5\n- g4\n- g3"
            )
        );
        let again = take_instructions(&mut s, "wkr_1", Some("msn_1"), None).unwrap();
        assert!(again.starts_with("\n\n**USER REPLIES:**"), "{again}");
    }

    #[test]
    fn a_terminal_update_gets_only_the_queued_message() {
        let mut s = state();
        let last = take_instructions(&mut s, "wkr_1", Some("msn_1"), Some("completed"));
        assert_eq!(last.as_deref(), Some("Use tabs."));
        assert_eq!(
            take_instructions(&mut s, "wkr_1", Some("msn_1"), Some("failed")),
            None
        );
        let mut s = state();
        assert_eq!(
            take_instructions(&mut s, "wkr_1", None, Some("running")).as_deref(),
            Some("Use tabs."),
            "no mission, no notes"
        );
    }
}
