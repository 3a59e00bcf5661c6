/*
 * main() for host-style C test programs on the AN386 (Cortex-M4F) under QEMU: the test's own
 * main is compiled as tt_test_main (-Dmain=tt_test_main) and gets argc/argv from the semihosting
 * command line (-semihosting-config enable=on,target=native,arg=NAME,arg=...). Its stdio, file
 * access and malloc go through picolibc's semihosting library (--oslib=semihost), the heap being
 * the RAM the firmware would use as its arena; its return value becomes QEMU's exit status
 * (startup.c's reset_c -> SYS_EXIT_EXTENDED). The MPU is on, so a stray access faults (status 3).
 */
#include <stddef.h>
#include <string.h>

#include "cortex_m4.h"
#include "semihost.h"

int tt_test_main(int argc, char **argv);
int main(void);

#define MAX_ARGS 16

int main(void)
{
    static char cmdline[1024];
    static char *argv[MAX_ARGS + 1];
    mpu_init();
    cost_counter_init();
    int argc = 0;
    if (semihost_cmdline(cmdline, sizeof cmdline)) {
        for (char *p = cmdline; *p != '\0' && argc < MAX_ARGS;) {
            while (*p == ' ') {
                *p++ = '\0';
            }
            if (*p == '\0') {
                break;
            }
            argv[argc++] = p;
            while (*p != '\0' && *p != ' ') {
                p++;
            }
        }
    }
    argv[argc] = NULL;
    if (argc == 0) {
        static char name[] = "test";
        argv[argc++] = name;
    }
    return tt_test_main(argc, argv);
}
