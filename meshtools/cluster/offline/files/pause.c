/* The pod sandbox's process: holds the pod's namespaces open until the kubelet stops it.
 * Sleeps, reaps any child that the pod's processes leave to it (it is PID 1 when the pod
 * shares its PID namespace), and exits 0 on SIGINT or SIGTERM. Built static, so its image
 * holds this one file. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signal_number) {
    (void)signal_number;
    _exit(0);
}

static void reap(int signal_number) {
    (void)signal_number;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    if (getpid() != 1) {
        fprintf(stderr, "pause: warning: not PID 1, so orphans are not reaped here\n");
    }
    struct sigaction stopping = {.sa_handler = stop};
    struct sigaction reaping = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &stopping, NULL) < 0 || sigaction(SIGTERM, &stopping, NULL) < 0 ||
        sigaction(SIGCHLD, &reaping, NULL) < 0) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
