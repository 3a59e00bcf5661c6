/*
 * Reading the files tests/c/gen_plans.py writes (its docstring has the formats): the manifest of
 * plans and reference steps, plan and sample files, and the mutants pack. Header-only, static:
 * include it from the test's one translation unit. Define _POSIX_C_SOURCE (for posix_memalign)
 * before including any system header.
 */
#ifndef TT_PLAN_DATA_H
#define TT_PLAN_DATA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PD_MAX_PLANS 8
#define PD_MAX_STEPS 4
#define PD_NAME 64

typedef struct {
    int32_t label;
    float lr;
    char sample[PD_NAME];
    float loss; /* the reference executor's loss of this step */
    int32_t pred;
} pd_step;

typedef struct {
    char name[PD_NAME];
    char file[PD_NAME];
    int nsteps;
    pd_step steps[PD_MAX_STEPS];
} pd_plan;

typedef struct {
    int nplans;
    pd_plan plans[PD_MAX_PLANS];
} pd_manifest;

/* The whole file in a 16-byte-aligned heap buffer of exactly its length (so ASan reports any read
 * past its end), or NULL. A plan must sit at a 16-byte-aligned address, as in a device's flash,
 * since its blob is aligned relative to the file start. Free with free(). */
static inline uint8_t *pd_read_path(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        printf("cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = NULL;
    if (size < 0 || posix_memalign(&buf, 16, size > 0 ? (size_t)size : 1u) != 0) {
        fclose(f);
        return NULL;
    }
    if (size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static inline uint8_t *pd_read(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return pd_read_path(path, len);
}

/* A copy of len bytes in a 16-byte-aligned buffer of exactly len bytes. */
static inline uint8_t *pd_copy(const uint8_t *data, size_t len)
{
    void *buf = NULL;
    if (posix_memalign(&buf, 16, len > 0 ? len : 1u) != 0) {
        return NULL;
    }
    if (len > 0) {
        memcpy(buf, data, len);
    }
    return buf;
}

static inline int pd_read_manifest(const char *dir, pd_manifest *m)
{
    char path[1024], line[512];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("cannot open %s\n", path);
        return 0;
    }
    memset(m, 0, sizeof *m);
    while (fgets(line, sizeof line, f) != NULL) {
        char name[PD_NAME], file[PD_NAME], lr[64], loss[64];
        int k;
        long label, pred;
        if (sscanf(line, "plan %63s %63s", name, file) == 2 && m->nplans < PD_MAX_PLANS) {
            pd_plan *p = &m->plans[m->nplans++];
            snprintf(p->name, sizeof p->name, "%s", name);
            snprintf(p->file, sizeof p->file, "%s", file);
        } else if (sscanf(line, "step %63s %d %ld %63s %63s %63s %ld", name, &k, &label, lr, file,
                          loss, &pred) == 7) {
            pd_plan *p = NULL;
            for (int i = 0; i < m->nplans; i++) {
                if (strcmp(m->plans[i].name, name) == 0) {
                    p = &m->plans[i];
                }
            }
            if (p == NULL || p->nsteps >= PD_MAX_STEPS || k != p->nsteps + 1) {
                printf("manifest: bad step line: %s", line);
                fclose(f);
                return 0;
            }
            pd_step *s = &p->steps[p->nsteps++];
            s->label = (int32_t)label;
            s->lr = strtof(lr, NULL);
            s->loss = strtof(loss, NULL);
            s->pred = (int32_t)pred;
            snprintf(s->sample, sizeof s->sample, "%s", file);
        }
    }
    fclose(f);
    return m->nplans > 0;
}

static inline const pd_plan *pd_find(const pd_manifest *m, const char *name)
{
    for (int i = 0; i < m->nplans; i++) {
        if (strcmp(m->plans[i].name, name) == 0) {
            return &m->plans[i];
        }
    }
    printf("manifest has no plan %s\n", name);
    return NULL;
}

/* One record of mutants.bin. */
typedef struct {
    const char *name, *expect, *python;
    const uint8_t *data;
    size_t len;
} pd_mutant;

/* Reads the record at *pos of the pack; 0 at the end (or on a malformed pack: *pos != size). */
static inline int pd_next_mutant(const uint8_t *pack, size_t size, size_t *pos, pd_mutant *m)
{
    const char *fields[3];
    size_t p = *pos;
    for (int i = 0; i < 3; i++) {
        const uint8_t *nul = p < size ? memchr(pack + p, 0, size - p) : NULL;
        if (nul == NULL) {
            return 0;
        }
        fields[i] = (const char *)pack + p;
        p = (size_t)(nul - pack) + 1;
    }
    if (size - p < 4) {
        return 0;
    }
    uint32_t len = (uint32_t)pack[p] | (uint32_t)pack[p + 1] << 8 | (uint32_t)pack[p + 2] << 16 |
                   (uint32_t)pack[p + 3] << 24;
    p += 4;
    if (len > size - p) {
        return 0;
    }
    m->name = fields[0];
    m->expect = fields[1];
    m->python = fields[2];
    m->data = pack + p;
    m->len = len;
    *pos = p + len;
    return 1;
}

#endif
