/* `tinytrain status | label N | label none | save`: the learner from Zephyr's shell. */
#include <stdlib.h>
#include <zephyr/shell/shell.h>

#include "learner.h"

extern tt_learner learner; /* main.c */

static int cmd_status(const struct shell *sh, size_t argc, char **argv)
{
    ARG_UNUSED(argc);
    ARG_UNUSED(argv);
    char line[256];
    tt_learner_status(&learner, line, sizeof line);
    shell_print(sh, "%s", line);
    return 0;
}

static int cmd_label(const struct shell *sh, size_t argc, char **argv)
{
    ARG_UNUSED(argc);
    int32_t label = TT_LABEL_NONE;
    if (strcmp(argv[1], "none") != 0) {
        char *end;
        long v = strtol(argv[1], &end, 10);
        int32_t classes = learner.model != NULL ? tt_model_classes(learner.model) : 0;
        if (*end != '\0' || v < 0 || v >= classes) {
            shell_error(sh, "label must be 0 .. %d or none, not '%s'", classes - 1, argv[1]);
            return -EINVAL;
        }
        label = (int32_t)v;
    }
    k_mutex_lock(&learner.lock, K_FOREVER);
    learner.label_override = label;
    k_mutex_unlock(&learner.lock);
    shell_print(sh,
                label == TT_LABEL_NONE ? "label: none set"
                                       : "label: %d for the windows "
                                         "that follow",
                label);
    return 0;
}

static int cmd_save(const struct shell *sh, size_t argc, char **argv)
{
    ARG_UNUSED(argc);
    ARG_UNUSED(argv);
    int rc = tt_learner_save(&learner);
    if (rc < 0) {
        shell_error(sh, "saving failed (%d)", rc);
        return rc;
    }
    shell_print(sh, rc > 0 ? "saved" : "nothing new to save");
    return 0;
}

SHELL_STATIC_SUBCMD_SET_CREATE(
    tinytrain_cmds,
    SHELL_CMD_ARG(status, NULL, "steps, running loss and accuracy, held-out accuracy", cmd_status,
                  1, 0),
    SHELL_CMD_ARG(label, NULL, "label N | label none: what the coming windows are", cmd_label, 2,
                  0),
    SHELL_CMD_ARG(save, NULL, "save the trained parameters to flash now", cmd_save, 1, 0),
    SHELL_SUBCMD_SET_END);
SHELL_CMD_REGISTER(tinytrain, &tinytrain_cmds, "the on-device learner", NULL);
