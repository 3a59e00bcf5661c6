/*
 * `import tinytrain`: the runtime's public C API (tt/tinytrain.h) as a MicroPython module, so a
 * board running MicroPython trains a compiled plan (.ttp) on samples it reads itself.
 *
 *   import tinytrain
 *   m = tinytrain.Plan(open("plan.ttp", "rb").read())
 *   loss, pred = m.train(sample, label)      # sample: any buffer of the input's bytes
 *   m.predict(sample)                        # the class with the largest logit
 *   open("params.bin", "wb").write(m.save()) # ... and m.restore(data, steps) at boot
 *
 * The plan and the arena are copied into / allocated from the MicroPython heap (16-byte aligned
 * views of larger blocks) and kept alive by the Plan object. Refusals from the runtime raise
 * ValueError (bad argument, label, plan) or RuntimeError (anything else) with its message.
 */
#include <string.h>

#include "py/obj.h"
#include "py/runtime.h"
#include "tt/tinytrain.h"

#define TT_MP_ALIGN 16u

typedef struct {
    mp_obj_base_t base;
    tt_model model;
    uint8_t *plan_block; /* heap blocks; the aligned views below point into them */
    uint8_t *arena_block;
    const uint8_t *plan;
    size_t plan_len;
    size_t arena_size;
} tinytrain_plan_obj_t;

static uint8_t *align_up(uint8_t *p)
{
    return (uint8_t *)(((uintptr_t)p + TT_MP_ALIGN - 1u) & ~(uintptr_t)(TT_MP_ALIGN - 1u));
}

static MP_NORETURN void raise_tt(tt_status st, const tt_error *err)
{
    const mp_obj_type_t *type = (st == TT_ERR_ARG || st == TT_ERR_LABEL || st == TT_ERR_NO_PLAN)
                                    ? &mp_type_ValueError
                                    : &mp_type_RuntimeError;
    mp_raise_msg_varg(type, MP_ERROR_TEXT("%s (%s)"), err->msg, tt_status_name(st));
}

static tinytrain_plan_obj_t *loaded(mp_obj_t self_in)
{
    tinytrain_plan_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (!tt_model_loaded(&self->model)) {
        mp_raise_ValueError(MP_ERROR_TEXT("no plan loaded"));
    }
    return self;
}

/* A sample argument: a buffer of exactly the input's bytes (checked by the runtime too). */
static void sample_arg(mp_obj_t obj, mp_buffer_info_t *buf)
{
    mp_get_buffer_raise(obj, buf, MP_BUFFER_READ);
}

/* Plan(plan_bytes, arena_size=0): arena_size 0 takes what the plan needs (its arena and the
 * tables it decodes into the arena's tail). */
static mp_obj_t tinytrain_plan_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
                                        const mp_obj_t *args)
{
    mp_arg_check_num(n_args, n_kw, 1, 2, false);
    mp_buffer_info_t file;
    mp_get_buffer_raise(args[0], &file, MP_BUFFER_READ);
    tt_error err;
    tt_plan probe;
    tt_status st = tt_plan_validate(file.buf, file.len, SIZE_MAX, &probe, &err);
    if (st != TT_OK) {
        raise_tt(st, &err);
    }
    size_t arena_size = n_args > 1 ? (size_t)mp_obj_get_int(args[1]) : 0;
    if (arena_size == 0) {
        arena_size = (size_t)probe.arena_size + probe.tables_size + TT_MP_ALIGN;
    }

    tinytrain_plan_obj_t *self = mp_obj_malloc(tinytrain_plan_obj_t, type);
    self->plan_block = m_new(uint8_t, file.len + TT_MP_ALIGN);
    self->arena_block = m_new(uint8_t, arena_size + TT_MP_ALIGN);
    uint8_t *plan = align_up(self->plan_block);
    memcpy(plan, file.buf, file.len); /* read in place while loaded: a copy nothing else owns */
    self->plan = plan;
    self->plan_len = file.len;
    self->arena_size = arena_size;
    st = tt_model_init(&self->model, plan, file.len, align_up(self->arena_block), arena_size,
                       &err);
    if (st != TT_OK) {
        raise_tt(st, &err);
    }
    return MP_OBJ_FROM_PTR(self);
}

/* train(sample, label, lr=None) -> (loss, pred): one step; lr None is the plan's default. */
static mp_obj_t tinytrain_plan_train(size_t n_args, const mp_obj_t *args)
{
    tinytrain_plan_obj_t *self = loaded(args[0]);
    mp_buffer_info_t buf;
    sample_arg(args[1], &buf);
    mp_int_t label = mp_obj_get_int(args[2]);
    float lr = (n_args > 3 && args[3] != mp_const_none) ? mp_obj_get_float_to_f(args[3])
                                                        : self->model.plan.default_lr;
    if (label < INT32_MIN || label > INT32_MAX) {
        mp_raise_ValueError(MP_ERROR_TEXT("label out of range"));
    }
    tt_step_result r;
    tt_error err;
    tt_status st = tt_train_step(&self->model, buf.buf, buf.len, (int32_t)label, lr, &r, &err);
    if (st != TT_OK) {
        raise_tt(st, &err);
    }
    mp_obj_t out[2] = {mp_obj_new_float_from_f(r.loss), mp_obj_new_int(r.pred)};
    return mp_obj_new_tuple(2, out);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(tinytrain_plan_train_obj, 3, 4, tinytrain_plan_train);

static mp_obj_t tinytrain_plan_predict(mp_obj_t self_in, mp_obj_t sample)
{
    tinytrain_plan_obj_t *self = loaded(self_in);
    mp_buffer_info_t buf;
    sample_arg(sample, &buf);
    int32_t pred;
    tt_error err;
    tt_status st = tt_predict(&self->model, buf.buf, buf.len, &pred, &err);
    if (st != TT_OK) {
        raise_tt(st, &err);
    }
    return mp_obj_new_int(pred);
}
static MP_DEFINE_CONST_FUN_OBJ_2(tinytrain_plan_predict_obj, tinytrain_plan_predict);

/* evaluate(samples, labels) -> accuracy: samples back to back in one buffer, labels a sequence
 * of ints (one per sample). */
static mp_obj_t tinytrain_plan_evaluate(mp_obj_t self_in, mp_obj_t samples, mp_obj_t labels_in)
{
    tinytrain_plan_obj_t *self = loaded(self_in);
    mp_buffer_info_t buf;
    sample_arg(samples, &buf);
    size_t n;
    mp_obj_t *items;
    mp_obj_get_array(labels_in, &n, &items);
    if (n == 0 || buf.len % n != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("samples must hold one input per label"));
    }
    int32_t *labels = m_new(int32_t, n);
    for (size_t i = 0; i < n; i++) {
        labels[i] = (int32_t)mp_obj_get_int(items[i]);
    }
    float accuracy;
    tt_error err;
    tt_status st = tt_evaluate(&self->model, buf.buf, buf.len / n, labels, n, &accuracy, &err);
    m_del(int32_t, labels, n);
    if (st != TT_OK) {
        raise_tt(st, &err);
    }
    return mp_obj_new_float_from_f(accuracy);
}
static MP_DEFINE_CONST_FUN_OBJ_3(tinytrain_plan_evaluate_obj, tinytrain_plan_evaluate);

/* save() -> bytes: the trained parameters (restore() takes them back; same plan only). */
static mp_obj_t tinytrain_plan_save(mp_obj_t self_in)
{
    tinytrain_plan_obj_t *self = loaded(self_in);
    size_t n = tt_model_params_size(&self->model);
    vstr_t out;
    vstr_init_len(&out, n);
    tt_error err;
    tt_status st = tt_model_params_save(&self->model, (uint8_t *)out.buf, n, &err);
    if (st != TT_OK) {
        vstr_clear(&out);
        raise_tt(st, &err);
    }
    return mp_obj_new_bytes_from_vstr(&out);
}
static MP_DEFINE_CONST_FUN_OBJ_1(tinytrain_plan_save_obj, tinytrain_plan_save);

/* restore(params, steps=0): what save() gave, and the step count to continue from. */
static mp_obj_t tinytrain_plan_restore(size_t n_args, const mp_obj_t *args)
{
    tinytrain_plan_obj_t *self = loaded(args[0]);
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[1], &buf, MP_BUFFER_READ);
    mp_int_t steps = n_args > 2 ? mp_obj_get_int(args[2]) : 0;
    if (steps < 0 || (uint64_t)steps > UINT32_MAX) {
        mp_raise_ValueError(MP_ERROR_TEXT("steps out of range"));
    }
    tt_error err;
    tt_status st = tt_model_params_restore(&self->model, buf.buf, buf.len, (uint32_t)steps, &err);
    if (st != TT_OK) {
        raise_tt(st, &err);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(tinytrain_plan_restore_obj, 2, 3,
                                           tinytrain_plan_restore);

static mp_obj_t tinytrain_plan_reset(mp_obj_t self_in)
{
    tinytrain_plan_obj_t *self = loaded(self_in);
    tt_error err;
    tt_status st = tt_model_reset(&self->model, &err);
    if (st != TT_OK) {
        raise_tt(st, &err);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(tinytrain_plan_reset_obj, tinytrain_plan_reset);

/* stats() -> (running loss, running accuracy, steps averaged); see tt_stats. */
static mp_obj_t tinytrain_plan_stats(mp_obj_t self_in)
{
    tinytrain_plan_obj_t *self = loaded(self_in);
    tt_stats s = tt_model_stats(&self->model);
    mp_obj_t out[3] = {mp_obj_new_float_from_f(s.loss), mp_obj_new_float_from_f(s.accuracy),
                       mp_obj_new_int_from_uint(s.count)};
    return mp_obj_new_tuple(3, out);
}
static MP_DEFINE_CONST_FUN_OBJ_1(tinytrain_plan_stats_obj, tinytrain_plan_stats);

/* Read-only attributes: steps, classes, input_size (bytes), lr (the plan's default), arena_size. */
static void tinytrain_plan_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest)
{
    if (dest[0] != MP_OBJ_NULL) {
        return; /* no stores or deletes */
    }
    tinytrain_plan_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t input_bytes = 0;
    switch (attr) {
    case MP_QSTR_steps: dest[0] = mp_obj_new_int_from_uint(tt_model_steps(&self->model)); break;
    case MP_QSTR_classes: dest[0] = mp_obj_new_int(tt_model_classes(&self->model)); break;
    case MP_QSTR_input_size:
        tt_model_input(&self->model, &input_bytes);
        dest[0] = mp_obj_new_int_from_uint(input_bytes);
        break;
    case MP_QSTR_lr: dest[0] = mp_obj_new_float_from_f(self->model.plan.default_lr); break;
    case MP_QSTR_arena_size: dest[0] = mp_obj_new_int_from_uint(self->arena_size); break;
    default:
        dest[1] = MP_OBJ_SENTINEL; /* continue lookup in locals_dict */
        break;
    }
}

static const mp_rom_map_elem_t tinytrain_plan_locals_table[] = {
    {MP_ROM_QSTR(MP_QSTR_train), MP_ROM_PTR(&tinytrain_plan_train_obj)},
    {MP_ROM_QSTR(MP_QSTR_predict), MP_ROM_PTR(&tinytrain_plan_predict_obj)},
    {MP_ROM_QSTR(MP_QSTR_evaluate), MP_ROM_PTR(&tinytrain_plan_evaluate_obj)},
    {MP_ROM_QSTR(MP_QSTR_save), MP_ROM_PTR(&tinytrain_plan_save_obj)},
    {MP_ROM_QSTR(MP_QSTR_restore), MP_ROM_PTR(&tinytrain_plan_restore_obj)},
    {MP_ROM_QSTR(MP_QSTR_reset), MP_ROM_PTR(&tinytrain_plan_reset_obj)},
    {MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&tinytrain_plan_stats_obj)},
};
static MP_DEFINE_CONST_DICT(tinytrain_plan_locals, tinytrain_plan_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(tinytrain_plan_type, MP_QSTR_Plan, MP_TYPE_FLAG_NONE, make_new,
                         tinytrain_plan_make_new, attr, tinytrain_plan_attr, locals_dict,
                         &tinytrain_plan_locals);

static const mp_rom_map_elem_t tinytrain_module_table[] = {
    {MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_tinytrain)},
    {MP_ROM_QSTR(MP_QSTR_Plan), MP_ROM_PTR(&tinytrain_plan_type)},
};
static MP_DEFINE_CONST_DICT(tinytrain_module_globals, tinytrain_module_table);

const mp_obj_module_t tinytrain_user_cmodule = {
    .base = {&mp_type_module},
    .globals = (mp_obj_dict_t *)&tinytrain_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_tinytrain, tinytrain_user_cmodule);
