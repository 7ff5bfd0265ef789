/*
 * sdagd._core: the CPython + NumPy binding of the C core (csrc/sdagd.h).
 *
 * It only converts and validates: every array is checked for type, dtype, shape, contiguity
 * and (for inputs that feed the numerics) finiteness before the GIL is released around the
 * call into the core. Friendlier conversions (float64 -> float32, label dtypes) live in the
 * Python layer, sdagd/mlp.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <math.h>
#include <string.h>

#include "../csrc/sdagd.h"

static PyObject *DivergenceError; /* sdagd._core.DivergenceError(FloatingPointError) */
static PyObject *DeviceError;     /* sdagd._core.DeviceError(RuntimeError) */

/* Turns a core status into the matching Python exception; returns NULL for chaining. */
static PyObject *raise_status(sdagd_status st) {
    const char *msg = sdagd_last_error();
    switch (st) {
    case SDAGD_ERR_ARG: PyErr_SetString(PyExc_ValueError, msg); break;
    case SDAGD_ERR_NOMEM: PyErr_SetString(PyExc_MemoryError, msg); break;
    case SDAGD_ERR_NONFINITE: PyErr_SetString(DivergenceError, msg); break;
    case SDAGD_ERR_DEVICE: PyErr_SetString(DeviceError, msg); break;
    case SDAGD_ERR_INTERRUPTED:
        /* The poll callback already left KeyboardInterrupt (or the handler's error) set. */
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyboardInterrupt, msg);
        break;
    default: PyErr_SetString(PyExc_RuntimeError, msg); break;
    }
    return NULL;
}

/* ---- argument validation ------------------------------------------------------------------ */

static int check_array(PyObject *obj, const char *name, int typenum, const char *dtype_name,
                       int ndim, PyArrayObject **out) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy array, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != typenum || PyArray_ISBYTESWAPPED(a)) {
        PyErr_Format(PyExc_TypeError, "%s must have dtype %s (native byte order), got %R", name,
                     dtype_name, (PyObject *)PyArray_DESCR(a));
        return -1;
    }
    if (PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must be %d-dimensional, got %d dimensions", name, ndim,
                     PyArray_NDIM(a));
        return -1;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous and aligned; pass np.ascontiguousarray(%s)",
                     name, name);
        return -1;
    }
    *out = a;
    return 0;
}

static int check_finite(PyArrayObject *a, const char *name) {
    const float *x = (const float *)PyArray_DATA(a);
    npy_intp n = PyArray_SIZE(a);
    for (npy_intp i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            PyErr_Format(PyExc_ValueError, "%s contains NaN or inf (first at flat index %zd)", name, (Py_ssize_t)i);
            return -1;
        }
    return 0;
}

/* X: float32 (rows, n_in), finite. */
static int check_inputs(PyObject *obj, int n_in, PyArrayObject **out) {
    if (check_array(obj, "X", NPY_FLOAT32, "float32", 2, out) < 0) return -1;
    if (PyArray_DIM(*out, 1) != n_in) {
        PyErr_Format(PyExc_ValueError, "X must have %d columns (the network's input size), got %zd",
                     n_in, (Py_ssize_t)PyArray_DIM(*out, 1));
        return -1;
    }
    if (PyArray_DIM(*out, 0) < 1 || PyArray_DIM(*out, 0) > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "X must have between 1 and 2**31-1 rows, got %zd",
                     (Py_ssize_t)PyArray_DIM(*out, 0));
        return -1;
    }
    return check_finite(*out, "X");
}

/* y: int32 (rows,); the range [0, n_out) is checked by the core. */
static int check_labels(PyObject *obj, npy_intp rows, PyArrayObject **out) {
    if (check_array(obj, "y", NPY_INT32, "int32", 1, out) < 0) return -1;
    if (PyArray_DIM(*out, 0) != rows) {
        PyErr_Format(PyExc_ValueError, "y has %zd labels but X has %zd rows", (Py_ssize_t)PyArray_DIM(*out, 0),
                     (Py_ssize_t)rows);
        return -1;
    }
    return 0;
}

/* ---- Net ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    sdagd_mlp *net;
    int n_layers;
    int n_in, n_out;
    int dependents; /* optimizers and datasets living in this network's memory: no re-init then */
    int busy; /* set while a call runs without the GIL: refuses concurrent use of one network */
} NetObject;

static PyTypeObject NetType;

static int acquire(NetObject *self) {
    if (!self->net) {
        PyErr_SetString(PyExc_RuntimeError, "this network was not initialised (its __init__ failed or never ran)");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this network is being used by another thread; use one network per thread");
        return -1;
    }
    self->busy = 1;
    return 0;
}

static void Net_dealloc(NetObject *self) {
    sdagd_mlp_free(self->net);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Net_init(NetObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"sizes", "hidden", "output", "loss", "leaky_slope", "device", "batch_capacity", NULL};
    PyObject *sizes_obj;
    sdagd_mlp_config c = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oiiifii", kwlist, &sizes_obj, &c.hidden, &c.output,
                                     &c.loss, &c.leaky_slope, &c.device, &c.batch_capacity))
        return -1;
    PyObject *seq = PySequence_Fast(sizes_obj, "sizes must be a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 2 || n > 1000) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "sizes must list 2 to 1000 layer widths, got %zd", n);
        return -1;
    }
    int sizes[1000];
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (v < 1 || v > (1L << 24)) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "sizes[%zd] = %ld; each width must be in [1, 2**24]", i, v);
            return -1;
        }
        sizes[i] = (int)v;
    }
    Py_DECREF(seq);
    c.n_layers = (int)n - 1;
    c.sizes = sizes;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialise a network while another thread uses it");
        return -1;
    }
    if (self->dependents) {
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialise a network that optimizers or datasets use");
        return -1;
    }
    sdagd_mlp *fresh = NULL;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS /* a CUDA device may take a while to come up */
    st = sdagd_mlp_create(&fresh, &c);
    Py_END_ALLOW_THREADS
    if (st != SDAGD_OK) {
        raise_status(st);
        return -1;
    }
    /* Swap only on success, so a failed re-initialisation leaves the old network intact. */
    sdagd_mlp_free(self->net);
    self->net = fresh;
    self->n_layers = c.n_layers;
    self->n_in = sizes[0];
    self->n_out = sizes[n - 1];
    return 0;
}

/* For calls that only read: the network must exist. */
static int ready(NetObject *self) {
    if (self->net) return 0;
    PyErr_SetString(PyExc_RuntimeError, "this network was not initialised (its __init__ failed or never ran)");
    return -1;
}

static PyObject *Net_num_params(NetObject *self, void *closure) {
    (void)closure;
    if (ready(self) < 0) return NULL;
    return PyLong_FromSize_t(sdagd_mlp_num_params(self->net));
}

static PyObject *Net_layer_offsets(NetObject *self, PyObject *unused) {
    (void)unused;
    if (ready(self) < 0) return NULL;
    PyObject *list = PyList_New(self->n_layers);
    if (!list) return NULL;
    for (int l = 0; l < self->n_layers; l++) {
        PyObject *t = Py_BuildValue("(nn)", (Py_ssize_t)sdagd_mlp_weight_offset(self->net, l),
                                    (Py_ssize_t)sdagd_mlp_bias_offset(self->net, l));
        if (!t) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, l, t);
    }
    return list;
}

static PyObject *Net_init_params(NetObject *self, PyObject *args) {
    int init;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "iK", &init, &seed)) return NULL;
    if (acquire(self) < 0) return NULL;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_mlp_init_params(self->net, init, (uint64_t)seed);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != SDAGD_OK) return raise_status(st);
    Py_RETURN_NONE;
}

static PyObject *new_float_vector(size_t n) {
    npy_intp dims[1] = {(npy_intp)n};
    return PyArray_SimpleNew(1, dims, NPY_FLOAT32);
}

static PyObject *Net_get_params(NetObject *self, PyObject *unused) {
    (void)unused;
    if (acquire(self) < 0) return NULL; /* no torn copy while another thread trains */
    PyObject *out = new_float_vector(sdagd_mlp_num_params(self->net));
    sdagd_status st = out ? sdagd_mlp_get_params(self->net, (float *)PyArray_DATA((PyArrayObject *)out)) : SDAGD_OK;
    self->busy = 0;
    if (st != SDAGD_OK) {
        Py_DECREF(out);
        return raise_status(st);
    }
    return out;
}

static PyObject *Net_set_params(NetObject *self, PyObject *arg) {
    PyArrayObject *a;
    if (ready(self) < 0) return NULL;
    if (check_array(arg, "params", NPY_FLOAT32, "float32", 1, &a) < 0) return NULL;
    if ((size_t)PyArray_DIM(a, 0) != sdagd_mlp_num_params(self->net))
        return PyErr_Format(PyExc_ValueError, "params must hold %zu values, got %zd",
                            sdagd_mlp_num_params(self->net), (Py_ssize_t)PyArray_DIM(a, 0));
    if (check_finite(a, "params") < 0) return NULL;
    if (acquire(self) < 0) return NULL;
    sdagd_status st = sdagd_mlp_set_params(self->net, (const float *)PyArray_DATA(a));
    self->busy = 0;
    if (st != SDAGD_OK) return raise_status(st);
    Py_RETURN_NONE;
}

static PyObject *Net_forward(NetObject *self, PyObject *arg) {
    PyArrayObject *X;
    if (ready(self) < 0) return NULL;
    if (check_inputs(arg, self->n_in, &X) < 0) return NULL;
    npy_intp dims[2] = {PyArray_DIM(X, 0), self->n_out};
    PyObject *Y = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (!Y) return NULL;
    if (acquire(self) < 0) {
        Py_DECREF(Y);
        return NULL;
    }
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_mlp_forward(self->net, (const float *)PyArray_DATA(X), (int)dims[0],
                     (float *)PyArray_DATA((PyArrayObject *)Y));
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != SDAGD_OK) {
        Py_DECREF(Y);
        return raise_status(st);
    }
    return Y;
}

/* loss_grad(X, y, hessian=False) -> (mean loss, errors, grad (P,), hess (P,) or None) */
static PyObject *Net_loss_grad(NetObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"X", "y", "hessian", NULL};
    PyObject *xo, *yo;
    int want_hess = 0;
    PyArrayObject *X, *y;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|p", kwlist, &xo, &yo, &want_hess)) return NULL;
    if (ready(self) < 0) return NULL;
    if (check_inputs(xo, self->n_in, &X) < 0 || check_labels(yo, PyArray_DIM(X, 0), &y) < 0) return NULL;
    size_t P = sdagd_mlp_num_params(self->net);
    PyObject *grad = new_float_vector(P), *hess = want_hess ? new_float_vector(P) : Py_None;
    if (!grad || !hess) goto fail;
    if (!want_hess) Py_INCREF(Py_None);
    if (acquire(self) < 0) goto fail;
    double loss;
    int64_t errors;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_mlp_loss_grad(self->net, (const float *)PyArray_DATA(X), (const int32_t *)PyArray_DATA(y),
                       (int)PyArray_DIM(X, 0), &loss, &errors, (float *)PyArray_DATA((PyArrayObject *)grad),
                       want_hess ? (float *)PyArray_DATA((PyArrayObject *)hess) : NULL);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != SDAGD_OK) {
        raise_status(st);
        goto fail;
    }
    return Py_BuildValue("(dLNN)", loss, (long long)errors, grad, hess);
fail:
    Py_XDECREF(grad);
    if (want_hess) Py_XDECREF(hess);
    else if (grad) Py_DECREF(Py_None);
    return NULL;
}

static PyObject *Net_evaluate(NetObject *self, PyObject *args) {
    PyObject *xo, *yo;
    PyArrayObject *X, *y;
    if (!PyArg_ParseTuple(args, "OO", &xo, &yo)) return NULL;
    if (ready(self) < 0) return NULL;
    if (check_inputs(xo, self->n_in, &X) < 0 || check_labels(yo, PyArray_DIM(X, 0), &y) < 0) return NULL;
    if (acquire(self) < 0) return NULL;
    double loss;
    int64_t errors;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_mlp_evaluate(self->net, (const float *)PyArray_DATA(X), (const int32_t *)PyArray_DATA(y),
                      (int64_t)PyArray_DIM(X, 0), &loss, &errors);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != SDAGD_OK) return raise_status(st);
    return Py_BuildValue("(dL)", loss, (long long)errors);
}

static PyTypeObject DatasetType;
typedef struct DatasetObject DatasetObject;
static int dataset_ready(DatasetObject *ds, NetObject *net);
static sdagd_dataset *dataset_handle(DatasetObject *ds);

/* evaluate_dataset(Dataset) -> (mean loss, errors): data already on the network's device. */
static PyObject *Net_evaluate_dataset(NetObject *self, PyObject *arg) {
    if (ready(self) < 0) return NULL;
    if (!PyObject_TypeCheck(arg, &DatasetType))
        return PyErr_Format(PyExc_TypeError, "expected an sdagd._core.Dataset, got %s", Py_TYPE(arg)->tp_name);
    if (dataset_ready((DatasetObject *)arg, self) < 0) return NULL;
    if (acquire(self) < 0) return NULL;
    double loss;
    int64_t errors;
    sdagd_status st;
    sdagd_dataset *ds = dataset_handle((DatasetObject *)arg);
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_mlp_evaluate_dataset(self->net, ds, &loss, &errors);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != SDAGD_OK) return raise_status(st);
    return Py_BuildValue("(dL)", loss, (long long)errors);
}

static PyMethodDef Net_methods[] = {
    {"evaluate_dataset", (PyCFunction)Net_evaluate_dataset, METH_O, "evaluate_dataset(Dataset) -> (mean loss, errors)"},
    {"layer_offsets", (PyCFunction)Net_layer_offsets, METH_NOARGS, "[(w_offset, b_offset)] per layer in the flat slab"},
    {"init_params", (PyCFunction)Net_init_params, METH_VARARGS, "init_params(init_code, seed)"},
    {"get_params", (PyCFunction)Net_get_params, METH_NOARGS, "copy of the flat parameter slab (P,) float32"},
    {"set_params", (PyCFunction)Net_set_params, METH_O, "set_params(flat float32 (P,))"},
    {"forward", (PyCFunction)Net_forward, METH_O, "forward(X float32 (B, n_in)) -> (B, n_out)"},
    {"loss_grad", (PyCFunction)(void (*)(void))Net_loss_grad, METH_VARARGS | METH_KEYWORDS,
     "loss_grad(X, y int32, hessian=False) -> (loss, errors, grad, hess or None)"},
    {"evaluate", (PyCFunction)Net_evaluate, METH_VARARGS, "evaluate(X, y) -> (mean loss, errors)"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Net_getset[] = {{"num_params", (getter)Net_num_params, NULL, "P", NULL}, {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject NetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sdagd._core.Net",
    .tp_basicsize = sizeof(NetObject),
    .tp_dealloc = (destructor)Net_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Net(sizes, hidden, output, loss, leaky_slope, device, batch_capacity): a C-core MLP",
    .tp_methods = Net_methods,
    .tp_getset = Net_getset,
    .tp_init = (initproc)Net_init,
    .tp_new = PyType_GenericNew,
};

/* ---- Optimizer ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    sdagd_optimizer *opt;
    PyObject *net;  /* the Net whose memory the state lives in: kept alive as long as the state */
    size_t n_params;
    int busy; /* set while a training call uses it without the GIL */
} OptimizerObject;

static int opt_ready(OptimizerObject *self) {
    if (!self->opt) {
        PyErr_SetString(PyExc_RuntimeError, "this optimizer was not initialised (its __init__ failed or never ran)");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this optimizer is being used by another thread");
        return -1;
    }
    return 0;
}

static void Optimizer_dealloc(OptimizerObject *self) {
    sdagd_optim_free(self->opt);
    if (self->net) ((NetObject *)self->net)->dependents--;
    Py_XDECREF(self->net);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An optimizer's configuration from keyword arguments named as in its table rows (tables.h),
 * plus the schedule's: each missing one at its default. Ranges are checked by the core. */
static const char *optimizer_name(int kind) {
    int n;
    const sdagd_optimizer_desc *rows = sdagd_optim_table(&n);
    return kind >= 0 && kind < n ? rows[kind].name : "?";
}

static int config_from_kwargs(int kind, PyObject *kwds, sdagd_optim_config *c) {
    if (sdagd_optim_config_defaults(c, kind) != SDAGD_OK) {
        PyErr_Format(PyExc_ValueError, "%s", sdagd_last_error());
        return -1;
    }
    int n_hypers;
    const sdagd_hyper_desc *hypers = sdagd_optim_hyper_table(&n_hypers);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (kwds && PyDict_Next(kwds, &pos, &key, &value)) {
        const char *name = PyUnicode_AsUTF8(key);
        if (!name) return -1;
        double v;
        int integral = 0, found = -1;
        for (int i = 0; i < n_hypers && found < 0; i++)
            if ((int)hypers[i].optimizer == kind && strcmp(hypers[i].name, name) == 0) found = i;
        if (found >= 0) {
            integral = hypers[found].type == SDAGD_HYPER_INT || hypers[found].type == SDAGD_HYPER_CHOICE;
        } else if (strcmp(name, "schedule") == 0 || strcmp(name, "schedule_every") == 0 ||
                   strcmp(name, "schedule_epochs") == 0) {
            integral = 1;
        } else if (strcmp(name, "schedule_factor") != 0 && strcmp(name, "step_min") != 0) {
            PyErr_Format(PyExc_TypeError, "%s has no hyperparameter '%s'", optimizer_name(kind), name);
            return -1;
        }
        if (integral) {
            long long n = PyLong_AsLongLong(value);
            if (n == -1 && PyErr_Occurred()) return -1;
            if (n < INT_MIN || n > INT_MAX) {
                PyErr_Format(PyExc_ValueError, "%s: %s must fit a C int, got %lld", optimizer_name(kind), name, n);
                return -1;
            }
            v = (double)n;
        } else {
            v = PyFloat_AsDouble(value);
            if (v == -1.0 && PyErr_Occurred()) return -1;
        }
        if (found >= 0) c->hyper[hypers[found].slot] = v;
        else if (strcmp(name, "schedule") == 0) c->schedule = (int)v;
        else if (strcmp(name, "schedule_every") == 0) c->schedule_every = (int)v;
        else if (strcmp(name, "schedule_epochs") == 0) c->schedule_epochs = (int)v;
        else if (strcmp(name, "schedule_factor") == 0) c->schedule_factor = v;
        else c->step_min = v;
    }
    return 0;
}

static int Optimizer_init(OptimizerObject *self, PyObject *args, PyObject *kwds) {
    NetObject *net;
    int kind;
    sdagd_optim_config c;
    if (!PyArg_ParseTuple(args, "O!i", &NetType, &net, &kind) || config_from_kwargs(kind, kwds, &c) < 0) return -1;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialise an optimizer while another thread uses it");
        return -1;
    }
    if (ready(net) < 0) return -1;
    sdagd_optimizer *fresh = NULL;
    sdagd_status st = sdagd_optim_create(&fresh, &c, net->net);
    if (st != SDAGD_OK) {
        raise_status(st);
        return -1;
    }
    sdagd_optim_free(self->opt); /* only now: a failed re-initialisation keeps the old state */
    self->opt = fresh;
    if (self->net) ((NetObject *)self->net)->dependents--;
    net->dependents++;
    Py_INCREF(net);
    Py_XSETREF(self->net, (PyObject *)net);
    self->n_params = sdagd_mlp_num_params(net->net);
    return 0;
}

/* get_state() -> (float32 (slabs, P), step) */
static PyObject *Optimizer_get_state(OptimizerObject *self, PyObject *unused) {
    (void)unused;
    if (opt_ready(self) < 0) return NULL;
    npy_intp dims[2] = {sdagd_optim_num_state_slabs(self->opt), (npy_intp)self->n_params};
    PyObject *a = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (!a) return NULL;
    int64_t step;
    sdagd_status st = sdagd_optim_get_state(self->opt, (float *)PyArray_DATA((PyArrayObject *)a), &step);
    if (st != SDAGD_OK) {
        Py_DECREF(a);
        return raise_status(st);
    }
    return Py_BuildValue("(NL)", a, (long long)step);
}

static PyObject *Optimizer_set_state(OptimizerObject *self, PyObject *args) {
    PyObject *ao;
    long long step;
    PyArrayObject *a;
    if (!PyArg_ParseTuple(args, "OL", &ao, &step)) return NULL;
    if (opt_ready(self) < 0) return NULL;
    if (check_array(ao, "state", NPY_FLOAT32, "float32", 2, &a) < 0) return NULL;
    if (PyArray_DIM(a, 0) != sdagd_optim_num_state_slabs(self->opt) || (size_t)PyArray_DIM(a, 1) != self->n_params)
        return PyErr_Format(PyExc_ValueError, "state must have shape (%d, %zu), got (%zd, %zd)",
                            sdagd_optim_num_state_slabs(self->opt), self->n_params, (Py_ssize_t)PyArray_DIM(a, 0),
                            (Py_ssize_t)PyArray_DIM(a, 1));
    if (check_finite(a, "state") < 0) return NULL;
    sdagd_status st = sdagd_optim_set_state(self->opt, (const float *)PyArray_DATA(a), (int64_t)step);
    if (st != SDAGD_OK) return raise_status(st);
    Py_RETURN_NONE;
}

static PyObject *Optimizer_step_count(OptimizerObject *self, void *closure) {
    (void)closure;
    if (!self->opt) return PyLong_FromLong(0);
    return PyLong_FromLongLong(sdagd_optim_step_count(self->opt));
}

static PyMethodDef Optimizer_methods[] = {
    {"get_state", (PyCFunction)Optimizer_get_state, METH_NOARGS, "(state float32 (slabs, P), step)"},
    {"set_state", (PyCFunction)Optimizer_set_state, METH_VARARGS, "set_state(state, step)"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Optimizer_getset[] = {{"step_count", (getter)Optimizer_step_count, NULL, "steps taken", NULL},
                                         {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject OptimizerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sdagd._core.Optimizer",
    .tp_basicsize = sizeof(OptimizerObject),
    .tp_dealloc = (destructor)Optimizer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Optimizer(net, kind, **hyperparameters): optimizer state in the C core",
    .tp_methods = Optimizer_methods,
    .tp_getset = Optimizer_getset,
    .tp_init = (initproc)Optimizer_init,
    .tp_new = PyType_GenericNew,
};

/* ---- Dataset ------------------------------------------------------------------------------ */

/* Training data on one network's device, made once per fit: the core copies the arrays (on
 * the CPU too) and checks the copy, labels and finiteness, so that changes to the caller's
 * arrays during training cannot reach it. */
struct DatasetObject {
    PyObject_HEAD
    sdagd_dataset *ds;
    PyObject *X, *y;   /* the arrays it was made from (the core trains on its own copy) */
    PyObject *net;     /* the network whose device holds the data */
    Py_ssize_t rows;
};

static sdagd_dataset *dataset_handle(DatasetObject *ds) { return ds->ds; }

static int dataset_ready(DatasetObject *ds, NetObject *net) {
    if (!ds->ds) {
        PyErr_SetString(PyExc_RuntimeError, "this dataset was not initialised");
        return -1;
    }
    NetObject *owner = (NetObject *)ds->net;
    if (owner->n_in != net->n_in) {
        PyErr_Format(PyExc_ValueError, "this dataset has %d columns, the network takes %d", owner->n_in, net->n_in);
        return -1;
    }
    return 0;
}

static void Dataset_dealloc(DatasetObject *self) {
    sdagd_dataset_free(self->ds);
    if (self->net) ((NetObject *)self->net)->dependents--;
    Py_XDECREF(self->X);
    Py_XDECREF(self->y);
    Py_XDECREF(self->net);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Dataset_init(DatasetObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"net", "X", "y", NULL};
    NetObject *net;
    PyObject *xo, *yo;
    PyArrayObject *X, *y;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OO", kwlist, &NetType, &net, &xo, &yo)) return -1;
    if (self->ds) {
        PyErr_SetString(PyExc_RuntimeError, "a Dataset cannot be re-initialised");
        return -1;
    }
    if (ready(net) < 0) return -1;
    if (check_inputs(xo, net->n_in, &X) < 0 || check_labels(yo, PyArray_DIM(X, 0), &y) < 0) return -1;
    sdagd_dataset *ds = NULL;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_dataset_create(&ds, net->net, (const float *)PyArray_DATA(X), (const int32_t *)PyArray_DATA(y),
                        (int64_t)PyArray_DIM(X, 0));
    Py_END_ALLOW_THREADS
    if (st != SDAGD_OK) {
        raise_status(st);
        return -1;
    }
    self->ds = ds;
    self->rows = PyArray_DIM(X, 0);
    Py_INCREF(xo);
    Py_INCREF(yo);
    Py_INCREF(net);
    self->X = xo;
    self->y = yo;
    self->net = (PyObject *)net;
    net->dependents++;
    return 0;
}

static PyObject *Dataset_rows(DatasetObject *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->rows);
}

static PyGetSetDef Dataset_getset[] = {{"rows", (getter)Dataset_rows, NULL, "N", NULL}, {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject DatasetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sdagd._core.Dataset",
    .tp_basicsize = sizeof(DatasetObject),
    .tp_dealloc = (destructor)Dataset_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Dataset(net, X float32 (N, n_in), y int32 (N,)): data on the network's device",
    .tp_getset = Dataset_getset,
    .tp_init = (initproc)Dataset_init,
    .tp_new = PyType_GenericNew,
};

/* ---- training ----------------------------------------------------------------------------- */

/* The raw statistics of one call; history.py turns them into rates (one place for that). */
static PyObject *stats_dict(const sdagd_train_stats *s, int layers) {
    PyObject *grad_sq = PyList_New(layers), *saturated = PyList_New(layers - 1);
    PyObject *unit_rows = PyList_New(layers - 1), *inactive = PyList_New(layers - 1);
    PyObject *d = NULL;
    if (!grad_sq || !saturated || !unit_rows || !inactive) goto out;
    for (int l = 0; l < layers; l++) {
        PyObject *v = PyFloat_FromDouble(s->grad_sq[l]);
        if (!v) goto out;
        PyList_SET_ITEM(grad_sq, l, v);
        if (l + 1 == layers) break;
        PyObject *a = PyLong_FromLongLong(s->saturated[l]), *b = PyLong_FromLongLong(s->unit_rows[l]);
        PyObject *c = PyLong_FromLongLong(s->inactive[l]);
        if (!a || !b || !c) {
            Py_XDECREF(a);
            Py_XDECREF(b);
            Py_XDECREF(c);
            goto out;
        }
        PyList_SET_ITEM(saturated, l, a);
        PyList_SET_ITEM(unit_rows, l, b);
        PyList_SET_ITEM(inactive, l, c);
    }
    d = Py_BuildValue("{s:d,s:L,s:L,s:L,s:d,s:d,s:d,s:L,s:L,s:L,s:i,s:L,s:d,s:O,s:O,s:O,s:O}", "loss_sum",
                      s->loss_sum, "errors", (long long)s->errors, "rows", (long long)s->rows, "steps",
                      (long long)s->steps, "mu_sum", s->mu_sum, "mu_min", s->mu_min, "mu_max", s->mu_max, "mu_count",
                      (long long)s->mu_count, "phase1_params", (long long)s->phase1_params, "params_seen",
                      (long long)s->params_seen, "diverged", s->diverged, "diverged_step",
                      (long long)s->diverged_step, "diverged_loss", s->diverged_loss, "grad_sq", grad_sq,
                      "saturated", saturated, "unit_rows", unit_rows, "inactive", inactive);
out:
    Py_XDECREF(grad_sq);
    Py_XDECREF(saturated);
    Py_XDECREF(unit_rows);
    Py_XDECREF(inactive);
    return d;
}

/* Caller-side arrays of the diagnostics for K networks of `layers` weight layers. */
typedef struct {
    double *grad_sq;
    int64_t *counts; /* saturated, unit_rows, inactive: 3 * layers per network */
} diag_buffers;

static int diag_alloc(diag_buffers *b, sdagd_train_stats *stats, int K, int layers) {
    b->grad_sq = PyMem_Calloc((size_t)K * layers, sizeof(double));
    b->counts = PyMem_Calloc((size_t)K * 3 * layers, sizeof(int64_t));
    if (!b->grad_sq || !b->counts) {
        PyMem_Free(b->grad_sq);
        PyMem_Free(b->counts);
        PyErr_NoMemory();
        return -1;
    }
    for (int k = 0; k < K; k++) {
        int64_t *c = b->counts + (size_t)k * 3 * layers;
        stats[k].grad_sq = b->grad_sq + (size_t)k * layers;
        stats[k].saturated = c;
        stats[k].unit_rows = c + layers;
        stats[k].inactive = c + 2 * layers;
    }
    return 0;
}

static void diag_free(diag_buffers *b) {
    PyMem_Free(b->grad_sq);
    PyMem_Free(b->counts);
}

static int check_pair(OptimizerObject *opt, NetObject *net) {
    if (ready(net) < 0 || opt_ready(opt) < 0) return -1;
    if (opt->n_params != sdagd_mlp_num_params(net->net)) {
        PyErr_Format(PyExc_ValueError, "the optimizer was made for a network with %zu parameters, this one has %zu",
                     opt->n_params, sdagd_mlp_num_params(net->net));
        return -1;
    }
    if (opt->net != (PyObject *)net) {
        PyErr_SetString(PyExc_ValueError, "the optimizer holds the state of another network");
        return -1;
    }
    return 0;
}

/* Runs between mini-batches on the training thread: lets Python's signal handlers run, so
 * Ctrl-C stops an epoch after the current step with the network intact. */
static unsigned long main_thread_id; /* the thread that imported the module */

/* ctx: NULL, or a batch_progress whose on_batch (a Python callable, or NULL) is called with the
 * number of mini-batches done after each one; an exception it raises stops the epoch like
 * Ctrl-C, with that exception raised. */
typedef struct {
    PyObject *on_batch;
    long long batches;
} batch_progress;

static int poll_signals(void *ctx) {
    batch_progress *progress = ctx;
    int main_thread = PyThread_get_thread_ident() == main_thread_id;
    int report = progress != NULL && progress->on_batch != NULL;
    /* Python runs signal handlers in the main thread only: elsewhere there is nothing to poll,
     * and taking the GIL would only slow other threads down. */
    if (!main_thread && !report) return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = main_thread && PyErr_CheckSignals() < 0;
    if (!stop && report) {
        PyObject *r = PyObject_CallFunction(progress->on_batch, "L", ++progress->batches);
        stop = r == NULL;
        Py_XDECREF(r);
    }
    PyGILState_Release(g);
    return stop;
}

/* ---- Trainer: many networks at once -------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    sdagd_trainer *t;
    int K, n_layers;
    PyObject *nets, *opts; /* tuples, kept alive and marked busy during calls */
} TrainerObject;

static void Trainer_dealloc(TrainerObject *self) {
    sdagd_trainer_free(self->t);
    Py_XDECREF(self->nets);
    Py_XDECREF(self->opts);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Trainer_init(TrainerObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"nets", "opts", NULL};
    PyObject *nets_in, *opts_in;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO", kwlist, &nets_in, &opts_in)) return -1;
    if (self->t) {
        PyErr_SetString(PyExc_RuntimeError, "a Trainer cannot be re-initialised");
        return -1;
    }
    PyObject *nets = PySequence_Tuple(nets_in), *opts = nets ? PySequence_Tuple(opts_in) : NULL;
    sdagd_mlp **core_nets = NULL;
    sdagd_optimizer **core_opts = NULL;
    int rc = -1;
    if (!nets || !opts) goto out;
    Py_ssize_t K = PyTuple_GET_SIZE(nets);
    if (K < 1 || K > 100000 || PyTuple_GET_SIZE(opts) != K) {
        PyErr_Format(PyExc_ValueError, "need 1 to 100000 networks and one optimizer each, got %zd and %zd", K,
                     PyTuple_GET_SIZE(opts));
        goto out;
    }
    core_nets = PyMem_Malloc((size_t)K * sizeof *core_nets);
    core_opts = PyMem_Malloc((size_t)K * sizeof *core_opts);
    if (!core_nets || !core_opts) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t k = 0; k < K; k++) {
        PyObject *n = PyTuple_GET_ITEM(nets, k), *o = PyTuple_GET_ITEM(opts, k);
        if (!PyObject_TypeCheck(n, &NetType) || !PyObject_TypeCheck(o, &OptimizerType)) {
            PyErr_Format(PyExc_TypeError, "item %zd: expected a Net and an Optimizer", k);
            goto out;
        }
        if (check_pair((OptimizerObject *)o, (NetObject *)n) < 0) goto out;
        core_nets[k] = ((NetObject *)n)->net;
        core_opts[k] = ((OptimizerObject *)o)->opt;
    }
    sdagd_status st = sdagd_trainer_create(&self->t, core_nets, core_opts, (int)K);
    if (st != SDAGD_OK) {
        raise_status(st);
        goto out;
    }
    self->K = (int)K;
    self->n_layers = ((NetObject *)PyTuple_GET_ITEM(nets, 0))->n_layers;
    self->nets = nets;
    self->opts = opts;
    nets = opts = NULL;
    rc = 0;
out:
    Py_XDECREF(nets);
    Py_XDECREF(opts);
    PyMem_Free(core_nets);
    PyMem_Free(core_opts);
    return rc;
}

/* Marks every network and optimizer busy, or none (returns -1 with an error). */
static int trainer_acquire(TrainerObject *self, int take) {
    for (int k = 0; k < self->K; k++) {
        NetObject *n = (NetObject *)PyTuple_GET_ITEM(self->nets, k);
        OptimizerObject *o = (OptimizerObject *)PyTuple_GET_ITEM(self->opts, k);
        if (!take) {
            n->busy = o->busy = 0;
            continue;
        }
        if (n->busy || o->busy || !n->net || !o->opt) {
            for (int j = 0; j < k; j++) {
                ((NetObject *)PyTuple_GET_ITEM(self->nets, j))->busy = 0;
                ((OptimizerObject *)PyTuple_GET_ITEM(self->opts, j))->busy = 0;
            }
            if (self->K == 1) /* MLP.fit, MLP.train_step */
                PyErr_SetString(PyExc_RuntimeError,
                                "this network is being used by another thread; use one network per thread");
            else
                PyErr_Format(PyExc_RuntimeError, "network %d (or its optimizer) is in use by another thread", k);
            return -1;
        }
        n->busy = o->busy = 1;
    }
    return 0;
}

/* Reads the per-network arguments of a call: seeds[k] (when seeds is not NULL), epochs[k],
 * and stopped[k] into stats[k].diverged (a network that diverged before is left alone). */
static int trainer_arguments(const TrainerObject *self, PyObject *seeds_in, PyObject *epochs_in,
                             PyObject *stopped_in, uint64_t *seeds, int64_t *epochs, sdagd_train_stats *stats) {
    int K = self->K;
    if ((seeds && PySequence_Size(seeds_in) != K) || PySequence_Size(epochs_in) != K ||
        PySequence_Size(stopped_in) != K) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "%s need %d entries each", seeds ? "seeds, epochs and stopped"
                                                                            : "epochs and stopped", K);
        return -1;
    }
    for (int k = 0; k < K; k++) {
        PyObject *a = seeds ? PySequence_GetItem(seeds_in, k) : NULL, *b = PySequence_GetItem(epochs_in, k);
        PyObject *c = PySequence_GetItem(stopped_in, k);
        if (a) seeds[k] = PyLong_AsUnsignedLongLong(a);
        if (b) epochs[k] = PyLong_AsLongLong(b);
        int stop = c ? PyObject_IsTrue(c) : -1;
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(c);
        if ((seeds && !a) || !b || stop < 0 || PyErr_Occurred()) return -1;
        stats[k].diverged = stop ? SDAGD_DIVERGED_LOSS : 0;
    }
    return 0;
}

/* One stats dict per network; a diverged one also gets the message fit() raises with. */
static PyObject *trainer_results(const TrainerObject *self, const sdagd_train_stats *stats) {
    PyObject *result = PyList_New(self->K);
    for (int k = 0; result && k < self->K; k++) {
        PyObject *d = stats_dict(&stats[k], self->n_layers);
        if (d && stats[k].diverged) {
            char message[256];
            sdagd_train_divergence_message(message, sizeof message,
                                     ((OptimizerObject *)PyTuple_GET_ITEM(self->opts, k))->opt, &stats[k]);
            PyObject *text = PyUnicode_FromString(message);
            if (!text || PyDict_SetItemString(d, "message", text) < 0) Py_CLEAR(d);
            Py_XDECREF(text);
        }
        if (!d) Py_CLEAR(result);
        else PyList_SET_ITEM(result, k, d);
    }
    return result;
}

static int trainer_ready(const TrainerObject *self) {
    if (self->t) return 0;
    PyErr_SetString(PyExc_RuntimeError, "this Trainer was not initialised");
    return -1;
}

/* epoch(data, batch_size, seeds, epochs, stopped, on_batch=None) -> [stats dict per network];
 * networks with stopped[k] true (diverged before) are left alone. on_batch, when given, is
 * called with the number of mini-batches done after each one. */
static PyObject *Trainer_epoch(TrainerObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"data", "batch_size", "seeds", "epochs", "stopped", "on_batch", NULL};
    DatasetObject *data;
    int batch_size;
    PyObject *seeds_in, *epochs_in, *stopped_in;
    batch_progress progress = {NULL, 0};
    if (trainer_ready(self) < 0) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!iOOO|O", kwlist, &DatasetType, &data, &batch_size, &seeds_in,
                                     &epochs_in, &stopped_in, &progress.on_batch))
        return NULL;
    if (progress.on_batch == Py_None) progress.on_batch = NULL;
    if (progress.on_batch != NULL && !PyCallable_Check(progress.on_batch))
        return PyErr_Format(PyExc_TypeError, "on_batch must be callable or None, got %R", progress.on_batch);
    if (dataset_ready(data, (NetObject *)PyTuple_GET_ITEM(self->nets, 0)) < 0) return NULL;
    if (batch_size < 1) return PyErr_Format(PyExc_ValueError, "batch_size must be >= 1, got %d", batch_size);
    int K = self->K;
    uint64_t *seeds = PyMem_Calloc((size_t)K, sizeof *seeds);
    int64_t *epochs = PyMem_Calloc((size_t)K, sizeof *epochs);
    sdagd_train_stats *stats = PyMem_Calloc((size_t)K, sizeof *stats);
    diag_buffers diag = {NULL, NULL};
    PyObject *result = NULL;
    if (!seeds || !epochs || !stats) {
        PyErr_NoMemory();
        goto out;
    }
    if (trainer_arguments(self, seeds_in, epochs_in, stopped_in, seeds, epochs, stats) < 0) goto out;
    if (diag_alloc(&diag, stats, K, self->n_layers) < 0) goto out;
    if (trainer_acquire(self, 1) < 0) goto out;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_trainer_epoch(self->t, data->ds, batch_size, seeds, epochs, stats, poll_signals, &progress);
    Py_END_ALLOW_THREADS
    trainer_acquire(self, 0);
    result = st == SDAGD_OK ? trainer_results(self, stats) : raise_status(st);
out:
    diag_free(&diag);
    PyMem_Free(seeds);
    PyMem_Free(epochs);
    PyMem_Free(stats);
    return result;
}

/* step(X, y, epochs, stopped) -> [stats dict per network]: one update of every network not
 * stopped on the batch (X, y). */
static PyObject *Trainer_step(TrainerObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"X", "y", "epochs", "stopped", NULL};
    PyObject *xo, *yo, *epochs_in, *stopped_in;
    PyArrayObject *X, *y;
    if (trainer_ready(self) < 0) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO", kwlist, &xo, &yo, &epochs_in, &stopped_in)) return NULL;
    NetObject *lead = (NetObject *)PyTuple_GET_ITEM(self->nets, 0);
    if (check_inputs(xo, lead->n_in, &X) < 0 || check_labels(yo, PyArray_DIM(X, 0), &y) < 0) return NULL;
    int K = self->K;
    int64_t *epochs = PyMem_Calloc((size_t)K, sizeof *epochs);
    sdagd_train_stats *stats = PyMem_Calloc((size_t)K, sizeof *stats);
    diag_buffers diag = {NULL, NULL};
    PyObject *result = NULL;
    if (!epochs || !stats) {
        PyErr_NoMemory();
        goto out;
    }
    if (trainer_arguments(self, NULL, epochs_in, stopped_in, NULL, epochs, stats) < 0) goto out;
    if (diag_alloc(&diag, stats, K, self->n_layers) < 0) goto out;
    if (trainer_acquire(self, 1) < 0) goto out;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_trainer_step(self->t, (const float *)PyArray_DATA(X), (const int32_t *)PyArray_DATA(y),
                      (int)PyArray_DIM(X, 0), epochs, stats);
    Py_END_ALLOW_THREADS
    trainer_acquire(self, 0);
    result = st == SDAGD_OK ? trainer_results(self, stats) : raise_status(st);
out:
    diag_free(&diag);
    PyMem_Free(epochs);
    PyMem_Free(stats);
    return result;
}

static PyMethodDef Trainer_methods[] = {
    {"epoch", (PyCFunction)(void (*)(void))Trainer_epoch, METH_VARARGS | METH_KEYWORDS,
     "epoch(data, batch_size, seeds, epochs, stopped, on_batch=None) -> [stats per network]"},
    {"step", (PyCFunction)(void (*)(void))Trainer_step, METH_VARARGS | METH_KEYWORDS,
     "step(X, y, epochs, stopped) -> [stats per network]: one update on the batch (X, y)"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject TrainerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sdagd._core.Trainer",
    .tp_basicsize = sizeof(TrainerObject),
    .tp_dealloc = (destructor)Trainer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Trainer(nets, opts): K networks of one shape trained together (K = 1: one network)",
    .tp_methods = Trainer_methods,
    .tp_init = (initproc)Trainer_init,
    .tp_new = PyType_GenericNew,
};

/* ---- module functions --------------------------------------------------------------------- */

static PyObject *py_shuffle_order(PyObject *module, PyObject *args) {
    (void)module;
    Py_ssize_t n;
    unsigned long long seed;
    long long epoch;
    if (!PyArg_ParseTuple(args, "nKL", &n, &seed, &epoch)) return NULL;
    if (n < 0) return PyErr_Format(PyExc_ValueError, "n must be >= 0, got %zd", n);
    npy_intp dims[1] = {n};
    PyObject *perm = PyArray_SimpleNew(1, dims, NPY_INT64);
    if (!perm) return NULL;
    sdagd_shuffle_order((int64_t *)PyArray_DATA((PyArrayObject *)perm), n, (uint64_t)seed, (int64_t)epoch);
    return perm;
}

static PyObject *py_set_num_threads(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyLong_Check(arg) || PyBool_Check(arg))
        return PyErr_Format(PyExc_TypeError, "the number of threads must be an int, got %s", Py_TYPE(arg)->tp_name);
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > 256) return PyErr_Format(PyExc_ValueError, "the number of threads must be in [1, 256], got %ld", n);
    return PyLong_FromLong(sdagd_set_threads((int)n));
}

static PyObject *py_get_num_threads(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyLong_FromLong(sdagd_get_threads());
}

static PyObject *py_cpu_solo_spans(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyLong_FromLongLong((long long)sdagd_cpu_solo_spans());
}

static PyObject *py_blas_info(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyUnicode_FromString(sdagd_blas_info());
}

/* cpu_loops(None) -> the instruction set of the elementwise loops in use; cpu_loops(name)
 * chooses one and returns it, or None when this processor cannot run it. */
static PyObject *py_cpu_loops(PyObject *module, PyObject *arg) {
    (void)module;
    const char *wanted = NULL;
    if (arg != Py_None && !(wanted = PyUnicode_AsUTF8(arg))) return NULL;
    const char *chosen = sdagd_cpu_loops(wanted);
    if (!chosen) Py_RETURN_NONE;
    return PyUnicode_FromString(chosen);
}

static PyObject *py_set_cuda_library(PyObject *module, PyObject *arg) {
    (void)module;
    const char *path = PyUnicode_AsUTF8(arg);
    if (!path) return NULL;
    sdagd_set_cuda_library(path);
    Py_RETURN_NONE;
}

/* device_check(code): None when usable, else raises RuntimeError saying why. */
static PyObject *py_device_check(PyObject *module, PyObject *arg) {
    (void)module;
    long device = PyLong_AsLong(arg);
    if (device == -1 && PyErr_Occurred()) return NULL;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sdagd_device_check((int)device);
    Py_END_ALLOW_THREADS
    if (st != SDAGD_OK) return raise_status(st);
    Py_RETURN_NONE;
}

/* check_optimizer(kind, **hyperparameters): ValueError with the core's message when a
 * hyperparameter is outside its range (tables.h), else None. */
static PyObject *py_check_optimizer(PyObject *unused, PyObject *args, PyObject *kwds) {
    int kind;
    sdagd_optim_config c;
    if (!PyArg_ParseTuple(args, "i", &kind) || config_from_kwargs(kind, kwds, &c) < 0) return NULL;
    if (sdagd_optim_config_check(&c) != SDAGD_OK) {
        PyErr_SetString(PyExc_ValueError, sdagd_last_error());
        return NULL;
    }
    Py_RETURN_NONE;
}

/* step_at(kind, epoch, **hyperparameters): the step size (lr, or SDAGD's radius) in that
 * epoch under the schedule, by the core's formula. */
static PyObject *py_step_at(PyObject *unused, PyObject *args, PyObject *kwds) {
    int kind;
    long long epoch;
    sdagd_optim_config c;
    if (!PyArg_ParseTuple(args, "iL", &kind, &epoch) || config_from_kwargs(kind, kwds, &c) < 0) return NULL;
    if (sdagd_optim_config_check(&c) != SDAGD_OK) {
        PyErr_SetString(PyExc_ValueError, sdagd_last_error());
        return NULL;
    }
    if (epoch < 0) {
        PyErr_Format(PyExc_ValueError, "epoch must be >= 0, got %lld", epoch);
        return NULL;
    }
    return PyFloat_FromDouble(sdagd_optim_step_at(&c, (int64_t)epoch));
}

static const char *curvature_names[] = {"never", "always", "every"};
static const char *type_names[] = {"real", "int", "choice", "optional"};
static const char *diagnostic_names[] = {"none", "saturation", "inactive"};

/* A dict from a Py_BuildValue format; NULL on failure. */
#define ROW(...) Py_BuildValue(__VA_ARGS__)

/* optimizer_table() -> tuple of dicts, one per row of tables.h, each with its hyperparameters. */
static PyObject *py_optimizer_table(PyObject *unused, PyObject *noargs) {
    int n, n_hypers;
    const sdagd_optimizer_desc *rows = sdagd_optim_table(&n);
    const sdagd_hyper_desc *hypers = sdagd_optim_hyper_table(&n_hypers);
    PyObject *out = PyTuple_New(n);
    for (int r = 0; out && r < n; r++) {
        PyObject *list = PyList_New(0), *step_name = NULL;
        for (int i = 0; list && i < n_hypers; i++) {
            const sdagd_hyper_desc *h = &hypers[i];
            if (h->optimizer != rows[r].code) continue;
            const char *choices = h->type == SDAGD_HYPER_CHOICE ? sdagd_optim_choice_names(h->slot) : NULL;
            PyObject *d = ROW("{s:s,s:i,s:d,s:d,s:d,s:O,s:O,s:s,s:s,s:z,s:O}", "name", h->name, "slot", h->slot,
                              "default", h->fallback, "low", h->low, "high", h->high, "low_closed",
                              h->low_closed ? Py_True : Py_False, "high_closed", h->high_closed ? Py_True : Py_False,
                              "type", type_names[h->type], "doc", h->doc, "choices", choices, "assignable", Py_True);
            if (!d || PyList_Append(list, d) < 0) Py_CLEAR(list);
            Py_XDECREF(d);
            if (h->slot == rows[r].step_slot) step_name = PyUnicode_FromString(h->name);
        }
        PyObject *row = NULL;
        if (list && step_name) {
            PyObject *hp = PyList_AsTuple(list);
            row = hp ? ROW("{s:s,s:i,s:N,s:i,s:s,s:N,s:s}", "name", rows[r].name, "code", rows[r].code,
                           "hyperparameters", hp, "state_slabs", rows[r].slabs, "curvature",
                           curvature_names[rows[r].curvature], "step", step_name, "state", rows[r].state)
                     : NULL;
            if (hp) step_name = NULL; /* stolen by the row (or freed with it) */
        }
        Py_XDECREF(list);
        Py_XDECREF(step_name);
        if (!row) Py_CLEAR(out);
        else PyTuple_SET_ITEM(out, r, row);
    }
    return out;
}

/* sdagd_activation_table() -> tuple of dicts, one per row of tables.h. */
static PyObject *py_activation_table(PyObject *unused, PyObject *noargs) {
    int n;
    const sdagd_activation_desc *rows = sdagd_activation_table(&n);
    PyObject *out = PyTuple_New(n);
    for (int r = 0; out && r < n; r++) {
        PyObject *row = ROW("{s:s,s:i,s:O,s:O,s:s}", "name", rows[r].name, "code", rows[r].code, "hidden",
                            rows[r].hidden ? Py_True : Py_False, "output", rows[r].output ? Py_True : Py_False,
                            "diagnostic", diagnostic_names[rows[r].diagnostic]);
        if (!row) Py_CLEAR(out);
        else PyTuple_SET_ITEM(out, r, row);
    }
    return out;
}
#undef ROW

static PyMethodDef module_methods[] = {
    {"shuffle_order", py_shuffle_order, METH_VARARGS, "shuffle_order(n, seed, epoch) -> int64 permutation"},
    {"optimizer_table", py_optimizer_table, METH_NOARGS, "the optimizers of csrc/tables.h, with their hyperparameters"},
    {"activation_table", py_activation_table, METH_NOARGS, "the activations of csrc/tables.h"},
    {"check_optimizer", (PyCFunction)(void (*)(void))py_check_optimizer, METH_VARARGS | METH_KEYWORDS,
     "check_optimizer(kind, **hyperparameters): ValueError unless each is within its range"},
    {"step_at", (PyCFunction)(void (*)(void))py_step_at, METH_VARARGS | METH_KEYWORDS,
     "step_at(kind, epoch, **hyperparameters): the step size in that epoch under the schedule"},
    {"set_num_threads", py_set_num_threads, METH_O, "set the CPU threads; returns the previous number"},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "CPU threads in use"},
    {"blas_info", py_blas_info, METH_NOARGS, "the BLAS library and kernels in use"},
    {"cpu_solo_spans", py_cpu_solo_spans, METH_NOARGS, "times the thread pool fell back to one thread"},
    {"cpu_loops", py_cpu_loops, METH_O, "the elementwise loops' instruction set: None to read, a name to choose"},
    {"set_cuda_library", py_set_cuda_library, METH_O, "where the CUDA backend's shared library is"},
    {"device_check", py_device_check, METH_O, "raise DeviceError unless the device code is usable"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "sdagd._core",
                                       "Binding of the sdagd C core; use the sdagd package instead.", -1,
                                       module_methods, NULL, NULL, NULL, NULL};

/* The core's enum codes, by name, so that Python never copies the integers by hand. */
static int add_codes(PyObject *m, const char *name, const char *const *names, const int *codes, int n) {
    PyObject *d = PyDict_New();
    if (!d) return -1;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(codes[i]);
        if (!v || PyDict_SetItemString(d, names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    int rc = PyModule_AddObjectRef(m, name, d);
    Py_DECREF(d);
    return rc;
}

/* name -> code dicts of the table's optimizers, or of its activations usable as hidden
 * (which = 0) or output (which = 1) */
static int add_table_codes(PyObject *m, const char *dict_name, int which) {
    const char *names[64];
    int codes[64], n = 0, rows;
    if (which < 0) {
        const sdagd_optimizer_desc *t = sdagd_optim_table(&rows);
        for (int i = 0; i < rows && n < 64; i++, n++) names[n] = t[i].name, codes[n] = t[i].code;
    } else {
        const sdagd_activation_desc *t = sdagd_activation_table(&rows);
        for (int i = 0; i < rows && n < 64; i++)
            if (which ? t[i].output : t[i].hidden) names[n] = t[i].name, codes[n++] = t[i].code;
    }
    return add_codes(m, dict_name, names, codes, n);
}

static int add_all_codes(PyObject *m) {
    static const char *loss[] = {"mse", "ce"};
    static const int loss_c[] = {SDAGD_LOSS_MSE, SDAGD_LOSS_CE};
    static const char *init[] = {"xavier", "he"};
    static const int init_c[] = {SDAGD_INIT_XAVIER_UNIFORM, SDAGD_INIT_HE_NORMAL};
    static const char *device[] = {"cpu", "cuda"};
    static const int device_c[] = {SDAGD_DEVICE_CPU, SDAGD_DEVICE_CUDA};
    static const char *norm[] = {"layer", "global"};
    static const int norm_c[] = {SDAGD_NORM_LAYER, SDAGD_NORM_GLOBAL};
    static const char *schedule[] = {"constant", "step", "cosine"};
    static const int schedule_c[] = {SDAGD_SCHEDULE_CONSTANT, SDAGD_SCHEDULE_STEP, SDAGD_SCHEDULE_COSINE};
    return add_table_codes(m, "HIDDEN_ACTIVATIONS", 0) < 0 || add_table_codes(m, "OUTPUT_ACTIVATIONS", 1) < 0 ||
                   add_codes(m, "LOSSES", loss, loss_c, 2) < 0 || add_codes(m, "INITS", init, init_c, 2) < 0 ||
                   add_codes(m, "DEVICES", device, device_c, 2) < 0 ||
                   add_table_codes(m, "OPTIMIZERS", -1) < 0 || add_codes(m, "NORMS", norm, norm_c, 2) < 0 ||
                   add_codes(m, "SCHEDULES", schedule, schedule_c, 3) < 0
               ? -1
               : 0;
}

PyMODINIT_FUNC PyInit__core(void) {
    import_array();
    main_thread_id = PyThread_get_thread_ident();
    if (PyType_Ready(&NetType) < 0 || PyType_Ready(&OptimizerType) < 0 || PyType_Ready(&DatasetType) < 0 ||
        PyType_Ready(&TrainerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    DivergenceError = PyErr_NewExceptionWithDoc(
        "sdagd._core.DivergenceError", "Training produced a NaN or infinite loss or parameter.",
        PyExc_FloatingPointError, NULL);
    DeviceError = PyErr_NewExceptionWithDoc(
        "sdagd._core.DeviceError", "The requested device (a CUDA GPU) cannot be used here; the message says why.",
        PyExc_RuntimeError, NULL);
    if (!DivergenceError || !DeviceError || PyModule_AddObjectRef(m, "DivergenceError", DivergenceError) < 0 ||
        PyModule_AddObjectRef(m, "DeviceError", DeviceError) < 0 ||
        PyModule_AddObjectRef(m, "Net", (PyObject *)&NetType) < 0 ||
        PyModule_AddObjectRef(m, "Optimizer", (PyObject *)&OptimizerType) < 0 ||
        PyModule_AddObjectRef(m, "Dataset", (PyObject *)&DatasetType) < 0 ||
        PyModule_AddObjectRef(m, "Trainer", (PyObject *)&TrainerType) < 0 || add_all_codes(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
