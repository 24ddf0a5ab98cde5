#!/bin/sh
# shellcheck disable=SC2154 # the settings are written in place of @SETTINGS@
# The fake `claude` CLI of the test harness (fakes/src/harness/claude.rs writes
# it, with the settings below filled in, into each test's own directory).
#
# Like the real CLI it refuses what the real one refuses (stream-json without
# --verbose, no credentials, bypassPermissions as root without IS_SANDBOX=1);
# each refusal is also recorded as the agent's protocol violation. It records
# every invocation in $records/calls/<pid>/ (args, stdin, env, cwd, pid, and
# grandchild for a hang), then behaves as $behaviour says:
#   replay       print $prefix, then the fixture $fixture, exit $code
#   crash        print $crash_stderr on stderr, exit $code
#   hang         start a grandchild `sleep`, print an init line, wait until
#                killed ($ignore_term=1: both ignore SIGTERM)
#   commands     run each line of $records/commands with `sh -c`, as the real
#                CLI's Bash tool runs a model's commands, streaming each as a
#                tool call and its result (a scripted or hostile model)
#   from-prompt  decided by the task prompt on stdin: HANG hangs quietly (no
#                init line: a task that prints nothing), CRASH exits 3
#                quoting its OAuth token on stderr, SLOW waits a second first,
#                FAIL replays the API-error run, WRITE writes out.txt, HOOK
#                plants git hooks (as a hostile model might), ASK_USER replays the
#                real CLI asking the user (AskUserQuestion) and waits for the
#                answer it will never get, as the real CLI does (unless the
#                brief already has the user's answer), lines
#                `RUN: <command>` are run as in `commands`, a line
#                `STRUCTURED: <json>` is handed in as --json-schema output; anything else
#                replays the successful run. A run with --resume <id> (only an id
#                this fake issued) takes its prompt from the first prompt's
#                `ON_RESUME <line>` lines.
# Command outputs are recorded in $records/calls/<pid>/command.<n>.*.
# With --input-format stream-json (docs/claude-cli.md) stdin is JSON lines: the
# first user message is the prompt (its text recorded as stdin, every line in
# input.jsonl); after a successful run each further user message is a turn of
# its own, recorded as message.<n> and answered by a result that quotes it,
# until stdin closes. Lines the real CLI refuses are refused here too.

# @SETTINGS@

# `claude --version` needs no credentials and starts no session (2.1.332 prints this).
if [ "$#" -eq 1 ] && [ "$1" = --version ]; then
    echo "0.0.0 (Claude Code)"
    exit 0
fi

call=$records/calls/$$
mkdir -p "$call"
echo $$ >"$call/pid"
pwd >"$call/cwd"
env >"$call/env"
: >"$call/args"
for a in "$@"; do printf '%s\n' "$a" >>"$call/args"; done
# The --mcp-config file as the real CLI reads it at start (the agent removes it after the
# first line).
prev=
for a in "$@"; do
    if [ "$prev" = --mcp-config ] && [ -f "$a" ]; then cp "$a" "$call/mcp-config"; fi
    prev=$a
done

# refuse VIOLATION MESSAGE: the real CLI's refusal, and the agent's mistake.
refuse() {
    printf '%s\n' "$1" >>"$call/violations"
    printf '%s\n' "$2" >&2
    exit 1
}

# The line the agent writes for a user message (serde_json sorts the keys): read
# in the shell, so the common case starts no jq (a task run may start this
# script hundreds of times); any other line goes to jq.
FAST_HEAD='{"message":{"content":[{"text":"'
FAST_TAIL='","type":"text"}],"role":"user"},"type":"user"}'

# decode_json_text: stdin (the inside of one JSON string literal) decoded.
decode_json_text() {
    LC_ALL=C awk '
        function hex(h, n, k) {
            n = 0
            for (k = 1; k <= 4; k++) n = n * 16 + index("0123456789abcdef", tolower(substr(h, k, 1))) - 1
            return n
        }
        {
            s = $0; out = ""
            while ((i = index(s, "\\")) > 0) {
                out = out substr(s, 1, i - 1); c = substr(s, i + 1, 1)
                if (c == "n") out = out "\n"
                else if (c == "t") out = out "\t"
                else if (c == "r") out = out "\r"
                else if (c == "b") out = out "\b"
                else if (c == "f") out = out "\f"
                else if (c == "u") { out = out sprintf("%c", hex(substr(s, i + 2, 4))); s = substr(s, i + 6); continue }
                else out = out c
                s = substr(s, i + 2)
            }
            printf "%s", out s
        }'
}

# user_text LINE: print the text of a stream-json user message; false for a
# line the real CLI ignores (another type), a refusal for one it rejects.
user_text() {
    printf '%s\n' "$1" >>"$call/input.jsonl"
    case $1 in
    "$FAST_HEAD"*"$FAST_TAIL")
        body=${1#"$FAST_HEAD"}
        printf '%s\n' "${body%"$FAST_TAIL"}" | decode_json_text
        return 0
        ;;
    esac
    kind=$(printf '%s' "$1" | jq -r 'if type == "object" then .type // "" else "" end' 2>/dev/null) ||
        refuse "a stream-json input line that is not JSON" \
            "Error parsing streaming input line (type=unknown, ${#1} chars): SyntaxError"
    [ "$kind" = user ] || return 1
    role=$(printf '%s' "$1" | jq -r '.message.role // "undefined"')
    [ "$role" = user ] ||
        refuse "a user message whose role is not user" "Error: Expected message role 'user', got '$role'"
    printf '%s' "$1" | jq -j '.message.content | if type == "string" then . else map(select(.type == "text") | .text) | join("\n") end'
}

stream=0
case " $* " in
*" --input-format stream-json "*)
    stream=1
    case " $* " in
    *" --output-format stream-json "*) ;;
    *) refuse "stream-json input without stream-json output" \
        "Error: --input-format=stream-json requires output-format=stream-json." ;;
    esac
    # The first user message is the prompt; stdin closed before one: nothing to do.
    while :; do
        IFS= read -r line || [ -n "$line" ] || exit 0
        if user_text "$line" >"$call/stdin"; then break; fi
    done
    ;;
*) cat >"$call/stdin" ;;
esac

# The fixture replayed, whose cost the later turns repeat (the real CLI's
# total_cost_usd is the session's).
replayed=

# The session: a new one (its id issued here and remembered with its prompt in
# $records/sessions/), or with --resume one this fake issued before; the real CLI
# answers an unknown id with an error result and exit 1 (docs/claude-cli.md).
# The prompt of a resumed session is the message it was resumed with; what the
# fake does then is said by the first prompt's `ON_RESUME <line>` lines, each
# taken as a line of the resumed run's prompt (without them it replays success).
resume=
prev=
for a in "$@"; do
    if [ "$prev" = --resume ]; then resume=$a; fi
    prev=$a
done
sid=fake-session-$$
prompt_file=$call/stdin
if [ -n "$resume" ]; then
    printf '%s\n' "$resume" >"$call/resumed"
    if [ ! -f "$records/sessions/$resume" ]; then
        printf '%s\n' "--resume with a session id the CLI never issued: $resume" >>"$call/violations"
        printf '{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":0,"session_id":"%s","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}\n' "$resume"
        printf 'No conversation found with session ID: %s\n' "$resume" >&2
        exit 1
    fi
    sid=$resume
    prompt_file=$call/resume-prompt
    sed -n 's/^ON_RESUME //p' "$records/sessions/$resume" >"$prompt_file"
else
    mkdir -p "$records/sessions"
    cp "$call/stdin" "$records/sessions/$sid"
fi

# finish CODE: the run is over. With streaming input (and a run that did not
# fail) each further user message is answered as a turn of its own until
# stdin closes; then exit with CODE.
finish() {
    if [ "$stream" = 1 ] && [ "$1" = 0 ]; then
        n=0
        while IFS= read -r line || [ -n "$line" ]; do
            user_text "$line" >"$call/message.tmp" || continue
            n=$((n + 1))
            mv "$call/message.tmp" "$call/message.$n"
            cost=0
            if [ -n "$replayed" ]; then
                cost=$(jq -r 'select(.type == "result") | .total_cost_usd // 0' "$replayed" 2>/dev/null | tail -n 1)
            fi
            init_line
            printf '{"type":"assistant","message":{"id":"msg_fake_reply_%s","type":"message","role":"assistant","model":"fake","content":[{"type":"text","text":"Noted."}],"usage":{"input_tokens":1,"output_tokens":1}},"parent_tool_use_id":null,"session_id":"'"$sid"'"}\n' "$n"
            printf '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":%s,"session_id":"'"$sid"'","total_cost_usd":%s,"usage":{"input_tokens":1,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}\n' \
                "$({ printf 'Received: '; cat "$call/message.$n"; } | json_string)" "${cost:-0}"
        done
    fi
    exit "$1"
}

case " $* " in
*" --output-format stream-json "*)
    case " $* " in
    *" --verbose "*) ;;
    *) refuse "stream-json output without --verbose" \
        "Error: When using --print, --output-format=stream-json requires --verbose" ;;
    esac
    ;;
esac
# On Bedrock or Vertex the real CLI uses the cloud's credentials instead.
if [ -z "${ANTHROPIC_API_KEY:-}${CLAUDE_CODE_OAUTH_TOKEN:-}" ] &&
    [ -z "${CLAUDE_CODE_USE_BEDROCK:-}${CLAUDE_CODE_USE_VERTEX:-}" ]; then
    refuse "started without credentials" "Invalid API key · Please run /login"
fi
if [ "$root" = 1 ] && [ "${IS_SANDBOX:-}" != 1 ]; then
    refuse "started as root without IS_SANDBOX=1" \
        "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"
fi

init_line() {
    echo '{"type":"system","subtype":"init","model":"fake","claude_code_version":"0.0.0","session_id":"'"$sid"'"}'
}

# replay FIXTURE: the recorded run, as this session (its session id is the one issued).
replay() {
    sed "s/\"session_id\":\"[^\"]*\"/\"session_id\":\"$sid\"/g" "$fixtures/$1"
    replayed=$fixtures/$1
}

# hang quiet|announce: the grandchild's pid file appears whole (renamed into
# place), as tests poll for it; `announce` prints the init line after it.
hang() {
    if [ "$ignore_term" = 1 ]; then trap '' TERM; fi
    sleep 300 &
    echo $! >"$call/grandchild.tmp"
    mv "$call/grandchild.tmp" "$call/grandchild"
    if [ "$1" = announce ]; then init_line; fi
    wait
    exit 0
}

# json_string: stdin as one JSON string literal. Control characters other
# than tab, newline and carriage return are dropped. The x keeps a final
# newline visible to awk, which would otherwise drop it.
json_string() {
    tab=$(printf '\t')
    cr=$(printf '\r')
    {
        LC_ALL=C tr -d '\000-\010\013\014\016-\037'
        printf x
    } |
        LC_ALL=C sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/$tab/\\\\t/g" -e "s/$cr/\\\\r/g" |
        LC_ALL=C awk 'BEGIN { printf "\"" }
            NR > 1 { printf "%s\\n", line }
            { line = $0 }
            END { sub(/x$/, "", line); printf "%s\"", line }'
}

# run_commands FILE: each line of FILE is a command, run as a child of this
# process; its output and status are recorded and streamed as a Bash call.
run_commands() {
    n=0
    while IFS= read -r cmd || [ -n "$cmd" ]; do
        n=$((n + 1))
        out=$call/command.$n
        printf '%s' "$cmd" >"$out.command"
        sh -c "$cmd" >"$out.output" 2>&1 </dev/null
        status=$?
        echo "$status" >"$out.status"
        if [ "$status" = 0 ]; then failed=false; else failed=true; fi
        printf '{"type":"assistant","message":{"id":"msg_fake_%s","type":"message","role":"assistant","model":"fake","content":[{"type":"tool_use","id":"toolu_fake_%s","name":"Bash","input":{"command":%s}}],"usage":{"input_tokens":0,"output_tokens":0}},"parent_tool_use_id":null,"session_id":"'"$sid"'"}\n' \
            "$n" "$n" "$(json_string <"$out.command")"
        printf '{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_fake_%s","type":"tool_result","content":%s,"is_error":%s}]},"parent_tool_use_id":null,"session_id":"'"$sid"'"}\n' \
            "$n" "$(json_string <"$out.output")" "$failed"
    done <"$1"
    printf '{"type":"result","subtype":"success","is_error":false,"num_turns":%s,"result":"Ran %s commands.","session_id":"'"$sid"'","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}\n' \
        "$n" "$n"
}

plant_hooks() {
    d=$(git rev-parse --git-common-dir)
    mkdir -p "$d/hooks" .git-hooks
    for h in pre-commit commit-msg pre-push post-commit; do
        printf '#!/bin/sh\ntouch "%s/hook-ran.%s"\n' "$records" "$h" >"$d/hooks/$h"
        cp "$d/hooks/$h" ".git-hooks/$h"
        chmod +x "$d/hooks/$h" ".git-hooks/$h"
    done
    git config core.hooksPath "$PWD/.git-hooks"
}

# Matched in the shell: a task run may start this script hundreds of times, and
# a grep per keyword would be a process each.
prompt_has() {
    case $prompt in
    *"$1"*) return 0 ;;
    *) return 1 ;;
    esac
}

# structured: the line `STRUCTURED: <json>` of the prompt is the model's result, which
# (as the real CLI does) comes back as the result line's structured_output only
# when the run was asked for it with --json-schema <schema>.
structured() {
    out=$(sed -n 's/^STRUCTURED: //p' "$prompt_file" | head -n 1)
    grep -qx -- '--json-schema' "$call/args" || out=
    init_line
    printf '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"Handed in the result.","session_id":"'"$sid"'","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}%s}\n' \
        "${out:+,\"structured_output\":$out}"
    exit 0
}

from_prompt() {
    prompt=$(cat "$prompt_file")
    if prompt_has HANG; then hang quiet; fi
    if prompt_has CRASH; then
        echo "claude: fatal: something broke badly (token ${CLAUDE_CODE_OAUTH_TOKEN:-})" >&2
        exit 3
    fi
    if prompt_has SLOW; then sleep 1; fi
    if prompt_has FAIL; then
        replay api-error-400.jsonl
        exit 1
    fi
    if prompt_has WRITE; then echo marker >out.txt; fi
    if prompt_has "STRUCTURED: "; then structured; fi
    if prompt_has HOOK; then plant_hooks; fi
    if prompt_has ASK_USER && ! prompt_has "## The user's answer"; then
        replay ask-user-question.jsonl
        hang quiet
    fi
    if prompt_has "RUN: " && sed -n 's/^RUN: //p' "$prompt_file" >"$call/commands" &&
        [ -s "$call/commands" ]; then
        init_line
        run_commands "$call/commands"
        finish 0
    fi
    replay success-bash-tool.jsonl
}

case $behaviour in
replay)
    printf '%s' "$prefix"
    replay "$fixture"
    finish "$code"
    ;;
crash)
    printf '%s\n' "$crash_stderr" >&2
    exit "$code"
    ;;
hang) hang announce ;;
commands)
    init_line
    run_commands "$records/commands"
    ;;
from-prompt) from_prompt ;;
*)
    echo "fake claude: unknown behaviour '$behaviour'" >&2
    exit 70
    ;;
esac
finish 0
