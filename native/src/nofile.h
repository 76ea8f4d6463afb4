// Node raises its RLIMIT_NOFILE soft limit to the hard one at start-up; what it starts (a container, an
// `enroot exec` command) gets the caller's soft limit back: programs that select() or size tables by it
// misbehave with a huge one. Async-signal-safe: called in forked children.
#pragma once

// Lower the soft limit to `soft` (the caller's, from the plan); 0, or a value above the current one, keeps it.
void enr_restore_nofile(unsigned soft);
