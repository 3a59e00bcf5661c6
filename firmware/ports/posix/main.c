/*
 * The simulated device: the firmware runtime behind a pseudo-terminal. It prints the pty's path
 * on stdout ("tinytrain-sim: /dev/pts/N"), then serves the link protocol on it until SIGINT/SIGTERM
 * or until stdin closes when started with --exit-with-stdin (how tinyhost ties it to a command).
 */
#define _DEFAULT_SOURCE /* cfmakeraw */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tt/tt_device.h"
#include "tt/tt_version.h"

#define PLAN_CAPACITY (4u * 1024u * 1024u)
#define MAX_ARENA (64u * 1024u * 1024u)

static _Alignas(16) uint8_t plan_slots[2][PLAN_CAPACITY];
static _Alignas(16) uint8_t arena[MAX_ARENA];
static tt_device device;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void write_all(void *ctx, const uint8_t *data, size_t len)
{
    int fd = *(int *)ctx;
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                struct pollfd p = {fd, POLLOUT, 0};
                poll(&p, 1, 100);
                continue;
            }
            return; /* the host went away; it will resend */
        }
        data += n;
        len -= (size_t)n;
    }
}

static uint32_t micros(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--arena BYTES] [--board NAME] [--exit-with-stdin]\n"
            "Runs the tinytrain firmware runtime on a pseudo-terminal and prints its path.\n"
            "  --arena BYTES      arena capacity (default 262144, at most %u)\n"
            "  --board NAME       board name reported by info (default posix-sim)\n"
            "  --exit-with-stdin  exit when standard input closes\n",
            prog, MAX_ARENA);
}

int main(int argc, char **argv)
{
    size_t arena_capacity = 256u * 1024u;
    const char *board = "posix-sim";
    int exit_with_stdin = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--arena") == 0 && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 0);
            if (*end != '\0' || v == 0 || v > MAX_ARENA) {
                fprintf(stderr, "tinytrain-sim: --arena must be 1..%u bytes\n", MAX_ARENA);
                return 2;
            }
            arena_capacity = v;
        } else if (strcmp(argv[i], "--board") == 0 && i + 1 < argc) {
            board = argv[++i];
        } else if (strcmp(argv[i], "--exit-with-stdin") == 0) {
            exit_with_stdin = 1;
        } else {
            usage(argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        perror("tinytrain-sim: cannot create a pseudo-terminal");
        return 1;
    }
    const char *path = ptsname(master);
    /* Hold the slave open in raw mode: bytes pass untouched, and the master never sees EOF
     * between host connections. */
    int slave = open(path, O_RDWR | O_NOCTTY);
    struct termios tio;
    if (slave < 0 || tcgetattr(slave, &tio) != 0) {
        perror("tinytrain-sim: cannot open the pseudo-terminal");
        return 1;
    }
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    tt_port port = {board, "us", micros, write_all, &master};
    tt_device_init(&device, &port, arena, arena_capacity, plan_slots[0], plan_slots[1],
                   PLAN_CAPACITY);
    printf("tinytrain-sim: %s\n", path);
    printf("firmware %s, arena %zu bytes, board %s\n", TT_FIRMWARE_VERSION, arena_capacity, board);
    fflush(stdout);

    uint8_t buf[4096];
    while (!stop) {
        struct pollfd fds[2] = {{master, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        int n = poll(fds, exit_with_stdin ? 2 : 1, 500);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (exit_with_stdin && (fds[1].revents & (POLLIN | POLLHUP))) {
            ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
            if (r <= 0) {
                break;
            }
        }
        if (fds[0].revents & POLLIN) {
            ssize_t r = read(master, buf, sizeof buf);
            if (r > 0) {
                tt_device_receive(&device, buf, (size_t)r);
            }
        }
    }
    close(slave);
    close(master);
    return 0;
}
