/*
 * stepper: run a command under ptrace, single-stepping it and every process it clones, and write
 * every distinct instruction address it executes inside [LO, HI) (hex, one per line) to OUT.
 * A traced process that execs another program is let go; when PROGRAM exits, so does the stepper
 * (the others, e.g. a created container's init, are detached and go on). Used by hot-symbols.sh to find the code
 * that husk's OCI verbs execute, so the linker can place it together (see hot-symbols.sh).
 *
 *   stepper LO HI OUT /path/to/husk ARGS...        (root; a few seconds per million instructions)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static void forget(pid_t *pids, int *n, pid_t pid)
{
	for (int i = 0; i < *n; i++)
		if (pids[i] == pid) {
			pids[i] = pids[--*n];
			return;
		}
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: stepper LO HI OUT PROGRAM [ARGS...]\n");
		return 2;
	}
	uint64_t lo = strtoull(argv[1], NULL, 16), hi = strtoull(argv[2], NULL, 16);
	if (hi <= lo) {
		fprintf(stderr, "stepper: empty range\n");
		return 2;
	}
	uint8_t *seen = calloc((hi - lo) / 8 + 1, 1);
	pid_t first = fork();
	if (first == 0) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		execv(argv[4], argv + 4);
		_exit(127);
	}
	int status;
	waitpid(first, &status, 0);
	ptrace(PTRACE_SETOPTIONS, first, NULL,
	       PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC |
		       PTRACE_O_EXITKILL);
	ptrace(PTRACE_SINGLESTEP, first, NULL, NULL);
	long steps = 0;
	int traced = 1, first_exec = 1, exit_code = 0, npids = 1;
	pid_t pids[256] = {first};
	while (traced > 0) {
		pid_t pid = waitpid(-1, &status, __WALL);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			traced--;
			forget(pids, &npids, pid);
			if (pid == first) {
				exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
				/* Let the others go cleanly (a tracer that just exits leaves them a SIGTRAP,
				 * which kills them): stop each (SIGSTOP also ends a blocking syscall, which
				 * the kernel restarts), detach it with no signal, then SIGCONT clears the
				 * SIGSTOP if the stop we saw was a step's. */
				for (int i = 0; i < npids; i++) {
					kill(pids[i], SIGSTOP);
					if (waitpid(pids[i], &status, __WALL) == pids[i] && WIFSTOPPED(status))
						ptrace(PTRACE_DETACH, pids[i], NULL, NULL);
					kill(pids[i], SIGCONT);
				}
				break;
			}
			continue;
		}
		if (!WIFSTOPPED(status))
			continue;
		int sig = WSTOPSIG(status), event = status >> 16, deliver = 0;
		if (event == PTRACE_EVENT_EXEC) {
			if (pid == first && first_exec) {
				first_exec = 0; /* the traced program itself */
			} else {
				ptrace(PTRACE_DETACH, pid, NULL, NULL); /* another program */
				traced--;
				forget(pids, &npids, pid);
				continue;
			}
		} else if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK ||
			   event == PTRACE_EVENT_VFORK) {
			unsigned long child = 0;
			ptrace(PTRACE_GETEVENTMSG, pid, NULL, &child);
			if (npids < 256)
				pids[npids++] = (pid_t)child;
			traced++;
		} else if (sig == SIGTRAP) {
			uint64_t rip = (uint64_t)ptrace(PTRACE_PEEKUSER, pid,
							offsetof(struct user_regs_struct, rip), NULL);
			steps++;
			if (rip >= lo && rip < hi)
				seen[(rip - lo) >> 3] |= 1 << ((rip - lo) & 7);
		} else if (sig != SIGSTOP) {
			deliver = sig; /* a real signal: pass it on (new clones start with SIGSTOP) */
		}
		ptrace(PTRACE_SINGLESTEP, pid, NULL, (void *)(long)deliver);
	}
	FILE *out = fopen(argv[3], "w");
	if (!out) {
		perror(argv[3]);
		return 1;
	}
	for (uint64_t off = 0; off < hi - lo; off++)
		if (seen[off >> 3] & (1 << (off & 7)))
			fprintf(out, "%llx\n", (unsigned long long)(lo + off));
	fclose(out);
	fprintf(stderr, "stepper: %ld steps, exit %d\n", steps, exit_code);
	return exit_code;
}
