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
#include "tt/tt_frame.h"
#include "tt/tt_version.h"

#define PLAN_CAPACITY (4u * 1024u * 1024u)
#define MAX_ARENA (64u * 1024u * 1024u)

static _Alignas(16) uint8_t plan_slots[2][PLAN_CAPACITY];
static _Alignas(16) uint8_t arena[MAX_ARENA];
static tt_device device;
static volatile sig_atomic_t stop;

/* --- the state file (--state FILE): the running plan, its trained parameters and step count,
 * saved at CHECKPOINT, restored at start. Written beside the file and renamed over it, so a kill
 * during a save leaves the previous checkpoint. Layout (little-endian): "TTSTATE1", plan length,
 * step count, parameter bytes, CRC-32 of plan and parameters; then the plan, then the parameters
 * (tt_device_params order). */
#define STATE_MAGIC "TTSTATE1"
#define STATE_HEADER 24u

typedef struct {
    FILE *f;
    uint32_t crc;
    int failed;
} state_writer;

static void put_u32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8u * i));
    }
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void state_put(void *ctx, const uint8_t *data, size_t len)
{
    state_writer *w = ctx;
    w->crc = tt_crc32(w->crc, data, len);
    w->failed |= fwrite(data, 1, len, w->f) != len;
}

static int save_state(void *ctx)
{
    const char *path = ctx;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        return -ENAMETOOLONG;
    }
    state_writer w = {fopen(tmp, "wb"), 0, 0};
    if (w.f == NULL) {
        return -errno;
    }
    uint8_t header[STATE_HEADER] = {0};
    memcpy(header, STATE_MAGIC, 8);
    w.failed |= fwrite(header, 1, sizeof header, w.f) != sizeof header; /* CRC filled in below */
    state_put(&w, device.plan_slot[device.active], device.active_len);
    size_t params = tt_device_params(&device, state_put, &w);
    put_u32(header + 8, (uint32_t)device.active_len);
    put_u32(header + 12, tt_model_steps(&device.model));
    put_u32(header + 16, (uint32_t)params);
    put_u32(header + 20, w.crc);
    w.failed |= fseek(w.f, 0, SEEK_SET) != 0 ||
                fwrite(header, 1, sizeof header, w.f) != sizeof header;
    w.failed |= fflush(w.f) != 0 || fsync(fileno(w.f)) != 0;
    w.failed |= fclose(w.f) != 0;
    if (w.failed || rename(tmp, path) != 0) {
        remove(tmp);
        return -EIO;
    }
    return 0;
}

/* Loads FILE's plan and parameters; 1 restored, 0 no file, -1 unusable (message printed). */
static int restore_state(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    uint8_t header[STATE_HEADER];
    uint8_t *params = NULL;
    int rc = -1;
    const char *why = "not a tinytrain state file";
    if (fread(header, 1, sizeof header, f) == sizeof header &&
        memcmp(header, STATE_MAGIC, 8) == 0) {
        uint32_t plan_len = get_u32(header + 8), steps = get_u32(header + 12);
        uint32_t params_len = get_u32(header + 16), crc = get_u32(header + 20);
        params = malloc(params_len ? params_len : 1);
        why = "truncated or corrupt (CRC)";
        if (plan_len <= PLAN_CAPACITY && params != NULL &&
            fread(plan_slots[0], 1, plan_len, f) == plan_len &&
            fread(params, 1, params_len, f) == params_len &&
            tt_crc32(tt_crc32(0, plan_slots[0], plan_len), params, params_len) == crc) {
            tt_error err = {TT_OK, ""};
            if (tt_device_restore(&device, 0, plan_len, &err) == TT_OK &&
                tt_device_restore_params(&device, params, params_len, steps, &err) == TT_OK) {
                rc = 1;
            } else {
                fprintf(stderr, "tinytrain-sim: %s: its plan does not load: %s\n", path, err.msg);
                tt_model_unload(&device.model);
                free(params);
                fclose(f);
                return -1;
            }
        }
    }
    if (rc < 0) {
        fprintf(stderr, "tinytrain-sim: %s: %s; starting without a plan\n", path, why);
    }
    free(params);
    fclose(f);
    return rc;
}

/* --key FILE: the device's key (tinyhost keygen's file, its `mac-key` line); 0 read. A
 * `sign-public-key` line (tinyhost keygen --sign) also makes the device take only plans signed
 * with its secret half: *signed_plans set. */
static int read_key(const char *path, uint8_t key[TT_AUTH_KEY_SIZE],
                    uint8_t plan_key[TT_PLAN_KEY_SIZE], int *signed_plans)
{
    char text[4096];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "tinytrain-sim: --key %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(text, 1, sizeof text - 1u, f);
    fclose(f);
    text[n] = '\0';
    int rc = tt_auth_key_from_text(text, key);
    *signed_plans = tt_auth_hex_from_text(text, "sign-public-key", plan_key, TT_PLAN_KEY_SIZE) ==
                    0;
    tt_auth_wipe(text, sizeof text);
    if (rc != 0) {
        fprintf(stderr,
                "tinytrain-sim: --key %s: no line `mac-key = <64 hex digits>` (write one with "
                "`tinyhost keygen -o FILE`)\n",
                path);
    }
    return rc;
}

/* Each session's nonce is seeded from the OS (tt_auth.h). */
static int os_entropy(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    return getentropy(out, len);
}

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
            "usage: %s [--arena BYTES] [--board NAME] [--state FILE] [--key FILE] "
            "[--exit-with-stdin]\n"
            "Runs the tinytrain firmware runtime on a pseudo-terminal and prints its path.\n"
            "  --arena BYTES      arena capacity (default 262144, at most %u)\n"
            "  --board NAME       board name reported by info (default posix-sim)\n"
            "  --state FILE       keep the plan, trained parameters and step count in FILE:\n"
            "                     saved at each CHECKPOINT, restored at start\n"
            "  --key FILE         provision the device with FILE's key (tinyhost keygen): every\n"
            "                     request but HELLO must then carry its MAC (docs/security.md);\n"
            "                     with a sign-public-key line, only plans signed with it load\n"
            "  --exit-with-stdin  exit when standard input closes\n",
            prog, MAX_ARENA);
}

int main(int argc, char **argv)
{
    size_t arena_capacity = 256u * 1024u;
    const char *board = "posix-sim";
    const char *state = NULL;
    const char *key_file = NULL;
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
        } else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
            state = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            key_file = argv[++i];
        } else if (strcmp(argv[i], "--exit-with-stdin") == 0) {
            exit_with_stdin = 1;
        } else {
            usage(argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }

    uint8_t key[TT_AUTH_KEY_SIZE], plan_key[TT_PLAN_KEY_SIZE];
    int signed_plans = 0;
    if (key_file != NULL && read_key(key_file, key, plan_key, &signed_plans) != 0) {
        return 2;
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
    if (key_file != NULL) {
        tt_device_set_auth(&device, key, os_entropy, NULL);
        tt_auth_wipe(key, sizeof key);
        if (signed_plans) {
            tt_device_set_plan_key(&device, plan_key);
        }
    }
    int restored = 0;
    if (state != NULL) {
        tt_device_set_checkpoint(&device, save_state, (void *)state);
        restored = restore_state(state);
    }
    printf("tinytrain-sim: %s\n", path);
    printf("firmware %s, arena %zu bytes, board %s%s%s\n", TT_FIRMWARE_VERSION, arena_capacity,
           board, key_file != NULL ? ", provisioned with a key" : "",
           signed_plans ? ", signed plans only" : "");
    if (restored > 0) {
        printf("restored plan and parameters at step %lu from %s\n",
               (unsigned long)tt_model_steps(&device.model), state);
    }
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
