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

/* Turns a core status into the matching Python exception; returns NULL for chaining. */
static PyObject *raise_status(sdagd_status st) {
    const char *msg = sdagd_last_error();
    switch (st) {
    case SDAGD_ERR_ARG: PyErr_SetString(PyExc_ValueError, msg); break;
    case SDAGD_ERR_NOMEM: PyErr_SetString(PyExc_MemoryError, msg); break;
    case SDAGD_ERR_NONFINITE: PyErr_SetString(DivergenceError, msg); break;
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
    mlp *net;
    int n_layers;
    int n_in, n_out;
    int hidden;   /* sdagd_activation of the hidden layers */
    int *widths;  /* (n_layers + 1) layer sizes */
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
    mlp_free(self->net);
    PyMem_Free(self->widths);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Net_init(NetObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"sizes", "hidden", "output", "loss", "leaky_slope", "device", "batch_capacity", NULL};
    PyObject *sizes_obj;
    mlp_config c = {0};
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
    mlp *fresh = NULL;
    int *widths = PyMem_Malloc((size_t)n * sizeof(int));
    if (!widths) {
        PyErr_NoMemory();
        return -1;
    }
    sdagd_status st = mlp_create(&fresh, &c);
    if (st != SDAGD_OK) {
        PyMem_Free(widths);
        raise_status(st);
        return -1;
    }
    /* Swap only on success, so a failed re-initialisation leaves the old network intact. */
    mlp_free(self->net);
    PyMem_Free(self->widths);
    self->net = fresh;
    self->widths = widths;
    memcpy(self->widths, sizes, (size_t)n * sizeof(int));
    self->hidden = c.hidden;
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
    return PyLong_FromSize_t(mlp_num_params(self->net));
}

static PyObject *Net_layer_offsets(NetObject *self, PyObject *unused) {
    (void)unused;
    if (ready(self) < 0) return NULL;
    PyObject *list = PyList_New(self->n_layers);
    if (!list) return NULL;
    for (int l = 0; l < self->n_layers; l++) {
        PyObject *t = Py_BuildValue("(nn)", (Py_ssize_t)mlp_weight_offset(self->net, l),
                                    (Py_ssize_t)mlp_bias_offset(self->net, l));
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
    sdagd_status st = mlp_init_params(self->net, init, (uint64_t)seed);
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
    PyObject *out = new_float_vector(mlp_num_params(self->net));
    if (out) mlp_get_params(self->net, (float *)PyArray_DATA((PyArrayObject *)out));
    self->busy = 0;
    return out;
}

static PyObject *Net_set_params(NetObject *self, PyObject *arg) {
    PyArrayObject *a;
    if (ready(self) < 0) return NULL;
    if (check_array(arg, "params", NPY_FLOAT32, "float32", 1, &a) < 0) return NULL;
    if ((size_t)PyArray_DIM(a, 0) != mlp_num_params(self->net))
        return PyErr_Format(PyExc_ValueError, "params must hold %zu values, got %zd",
                            mlp_num_params(self->net), (Py_ssize_t)PyArray_DIM(a, 0));
    if (check_finite(a, "params") < 0) return NULL;
    if (acquire(self) < 0) return NULL;
    mlp_set_params(self->net, (const float *)PyArray_DATA(a));
    self->busy = 0;
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
    st = mlp_forward(self->net, (const float *)PyArray_DATA(X), (int)dims[0],
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
    size_t P = mlp_num_params(self->net);
    PyObject *grad = new_float_vector(P), *hess = want_hess ? new_float_vector(P) : Py_None;
    if (!grad || !hess) goto fail;
    if (!want_hess) Py_INCREF(Py_None);
    if (acquire(self) < 0) goto fail;
    double loss;
    int64_t errors;
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mlp_loss_grad(self->net, (const float *)PyArray_DATA(X), (const int32_t *)PyArray_DATA(y),
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
    st = mlp_evaluate(self->net, (const float *)PyArray_DATA(X), (const int32_t *)PyArray_DATA(y),
                      (int64_t)PyArray_DIM(X, 0), &loss, &errors);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != SDAGD_OK) return raise_status(st);
    return Py_BuildValue("(dL)", loss, (long long)errors);
}

static PyMethodDef Net_methods[] = {
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
    optimizer *opt;
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
    optim_free(self->opt);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Optimizer_init(OptimizerObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"net", "kind", "lr", "momentum", "radius", "eps", "norm", "hessian_every",
                             "max_step", "mu", "gamma", "beta1", "beta2", "rho", NULL};
    NetObject *net;
    optim_config c = {0};
    c.hessian_every = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!i|ddddiidddddd", kwlist, &NetType, &net, &c.kind, &c.lr,
                                     &c.momentum, &c.radius, &c.eps, &c.norm, &c.hessian_every, &c.max_step,
                                     &c.mu, &c.gamma, &c.beta1, &c.beta2, &c.rho))
        return -1;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialise an optimizer while another thread uses it");
        return -1;
    }
    if (ready(net) < 0) return -1;
    optimizer *fresh = NULL;
    sdagd_status st = optim_create(&fresh, &c, net->net);
    if (st != SDAGD_OK) {
        raise_status(st);
        return -1;
    }
    optim_free(self->opt); /* only now: a failed re-initialisation keeps the old state */
    self->opt = fresh;
    self->n_params = mlp_num_params(net->net);
    return 0;
}

/* get_state() -> (float32 (slabs, P), step) */
static PyObject *Optimizer_get_state(OptimizerObject *self, PyObject *unused) {
    (void)unused;
    if (opt_ready(self) < 0) return NULL;
    npy_intp dims[2] = {optim_num_state_slabs(self->opt), (npy_intp)self->n_params};
    PyObject *a = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (!a) return NULL;
    int64_t step;
    optim_get_state(self->opt, (float *)PyArray_DATA((PyArrayObject *)a), &step);
    return Py_BuildValue("(NL)", a, (long long)step);
}

static PyObject *Optimizer_set_state(OptimizerObject *self, PyObject *args) {
    PyObject *ao;
    long long step;
    PyArrayObject *a;
    if (!PyArg_ParseTuple(args, "OL", &ao, &step)) return NULL;
    if (opt_ready(self) < 0) return NULL;
    if (check_array(ao, "state", NPY_FLOAT32, "float32", 2, &a) < 0) return NULL;
    if (PyArray_DIM(a, 0) != optim_num_state_slabs(self->opt) || (size_t)PyArray_DIM(a, 1) != self->n_params)
        return PyErr_Format(PyExc_ValueError, "state must have shape (%d, %zu), got (%zd, %zd)",
                            optim_num_state_slabs(self->opt), self->n_params, (Py_ssize_t)PyArray_DIM(a, 0),
                            (Py_ssize_t)PyArray_DIM(a, 1));
    sdagd_status st = optim_set_state(self->opt, (const float *)PyArray_DATA(a), (int64_t)step);
    if (st != SDAGD_OK) return raise_status(st);
    Py_RETURN_NONE;
}

static PyObject *Optimizer_step_count(OptimizerObject *self, void *closure) {
    (void)closure;
    if (!self->opt) return PyLong_FromLong(0);
    return PyLong_FromLongLong(optim_step_count(self->opt));
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

/* ---- training ----------------------------------------------------------------------------- */

static PyObject *stats_dict(const train_stats *s) {
    return Py_BuildValue("{s:d,s:L,s:L,s:L,s:d,s:d,s:d,s:L,s:L,s:L}", "loss_sum", s->loss_sum, "errors",
                         (long long)s->errors, "rows", (long long)s->rows, "steps", (long long)s->steps, "mu_sum",
                         s->mu_sum, "mu_min", s->mu_min, "mu_max", s->mu_max, "mu_count", (long long)s->mu_count,
                         "phase1_params", (long long)s->phase1_params, "params_seen", (long long)s->params_seen);
}

static int check_pair(OptimizerObject *opt, NetObject *net) {
    if (ready(net) < 0 || opt_ready(opt) < 0) return -1;
    if (opt->n_params != mlp_num_params(net->net)) {
        PyErr_Format(PyExc_ValueError, "the optimizer was made for a network with %zu parameters, this one has %zu",
                     opt->n_params, mlp_num_params(net->net));
        return -1;
    }
    return 0;
}

static PyObject *py_train_step(PyObject *module, PyObject *args) {
    (void)module;
    NetObject *net;
    OptimizerObject *opt;
    PyObject *xo, *yo;
    PyArrayObject *X, *y;
    if (!PyArg_ParseTuple(args, "O!O!OO", &NetType, &net, &OptimizerType, &opt, &xo, &yo)) return NULL;
    if (check_pair(opt, net) < 0) return NULL;
    if (check_inputs(xo, net->n_in, &X) < 0 || check_labels(yo, PyArray_DIM(X, 0), &y) < 0) return NULL;
    if (acquire(net) < 0) return NULL;
    opt->busy = 1;
    train_stats stats = {0};
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = train_step(net->net, opt->opt, (const float *)PyArray_DATA(X), (const int32_t *)PyArray_DATA(y),
                    (int)PyArray_DIM(X, 0), &stats);
    Py_END_ALLOW_THREADS
    net->busy = 0;
    opt->busy = 0;
    if (st != SDAGD_OK) return raise_status(st);
    return stats_dict(&stats);
}

/* Runs between mini-batches on the training thread: lets Python's signal handlers run, so
 * Ctrl-C stops an epoch after the current step with the network intact. */
static unsigned long main_thread_id; /* the thread that imported the module */

static int poll_signals(void *ctx) {
    (void)ctx;
    /* Python runs signal handlers in the main thread only: elsewhere there is nothing to poll,
     * and taking the GIL would only slow other threads down. */
    if (PyThread_get_thread_ident() != main_thread_id) return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = PyErr_CheckSignals() < 0;
    PyGILState_Release(g);
    return stop;
}

/* Adds the epoch's vanishing-gradient diagnostics to the stats dict: per weight layer the RMS
 * of dW over the epoch's steps; per hidden layer the saturated share of (row, unit) pairs
 * (sigmoid, tanh; else None) and the share of units never active (relu, leaky_relu; else None). */
static int add_diagnostics(PyObject *dict, const NetObject *net, const train_stats *s) {
    int layers = net->n_layers, saturating = net->hidden == ACT_SIGMOID || net->hidden == ACT_TANH;
    int rectifying = net->hidden == ACT_RELU || net->hidden == ACT_LEAKY_RELU;
    PyObject *rms = PyList_New(layers), *sat = PyList_New(layers - 1), *dead = PyList_New(layers - 1);
    int rc = -1;
    if (!rms || !sat || !dead) goto out;
    for (int l = 0; l < layers; l++) {
        PyObject *v = PyFloat_FromDouble(s->steps ? sqrt(s->grad_sq[l] / (double)s->steps) : NAN);
        if (!v) goto out;
        PyList_SET_ITEM(rms, l, v);
    }
    size_t base = 0;
    for (int l = 0; l + 1 < layers; l++) {
        int width = net->widths[l + 1];
        int64_t never = 0;
        for (int j = 0; j < width; j++) never += !s->ever_active[base + (size_t)j];
        base += (size_t)width;
        PyObject *a = saturating && s->unit_rows[l] ? PyFloat_FromDouble((double)s->saturated[l] / (double)s->unit_rows[l])
                                                    : Py_NewRef(Py_None);
        PyObject *b = rectifying && s->steps ? PyFloat_FromDouble((double)never / width) : Py_NewRef(Py_None);
        if (!a || !b) {
            Py_XDECREF(a);
            Py_XDECREF(b);
            goto out;
        }
        PyList_SET_ITEM(sat, l, a);
        PyList_SET_ITEM(dead, l, b);
    }
    rc = PyDict_SetItemString(dict, "grad_rms", rms) < 0 || PyDict_SetItemString(dict, "saturated", sat) < 0 ||
                 PyDict_SetItemString(dict, "dead", dead) < 0
             ? -1
             : 0;
out:
    Py_XDECREF(rms);
    Py_XDECREF(sat);
    Py_XDECREF(dead);
    return rc;
}

static PyObject *py_train_epoch(PyObject *module, PyObject *args, PyObject *kwds) {
    (void)module;
    static char *kwlist[] = {"net", "opt", "X", "y", "batch_size", "seed", "epoch", NULL};
    NetObject *net;
    OptimizerObject *opt;
    PyObject *xo, *yo;
    PyArrayObject *X, *y;
    int batch_size;
    unsigned long long seed;
    long long epoch;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OOiKL", kwlist, &NetType, &net, &OptimizerType, &opt, &xo,
                                     &yo, &batch_size, &seed, &epoch))
        return NULL;
    PyObject *result = NULL;
    if (check_pair(opt, net) < 0) return NULL;
    if (check_inputs(xo, net->n_in, &X) < 0 || check_labels(yo, PyArray_DIM(X, 0), &y) < 0) return NULL;
    if (batch_size < 1) return PyErr_Format(PyExc_ValueError, "batch_size must be >= 1, got %d", batch_size);
    int layers = net->n_layers, hidden_units = 0;
    for (int l = 0; l + 1 < layers; l++) hidden_units += net->widths[l + 1];
    double *grad_sq = PyMem_Calloc((size_t)layers, sizeof(double));
    int64_t *saturated = PyMem_Calloc((size_t)layers, sizeof(int64_t));
    int64_t *unit_rows = PyMem_Calloc((size_t)layers, sizeof(int64_t));
    uint8_t *ever_active = PyMem_Calloc((size_t)hidden_units + 1, 1);
    if (!grad_sq || !saturated || !unit_rows || !ever_active) {
        PyErr_NoMemory();
        goto done;
    }
    if (acquire(net) < 0) goto done;
    opt->busy = 1;
    train_stats stats = {.grad_sq = grad_sq, .saturated = saturated, .unit_rows = unit_rows, .ever_active = ever_active};
    sdagd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = train_epoch(net->net, opt->opt, (const float *)PyArray_DATA(X), (const int32_t *)PyArray_DATA(y),
                     (int64_t)PyArray_DIM(X, 0), batch_size, (uint64_t)seed, (int64_t)epoch, &stats,
                     poll_signals, NULL);
    Py_END_ALLOW_THREADS
    net->busy = 0;
    opt->busy = 0;
    if (st != SDAGD_OK) {
        raise_status(st);
        goto done;
    }
    result = stats_dict(&stats);
    if (result && add_diagnostics(result, net, &stats) < 0) Py_CLEAR(result);
done:
    PyMem_Free(grad_sq);
    PyMem_Free(saturated);
    PyMem_Free(unit_rows);
    PyMem_Free(ever_active);
    return result;
}

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
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > 4096) return PyErr_Format(PyExc_ValueError, "the number of threads must be in [1, 4096], got %ld", n);
    return PyLong_FromLong(sdagd_blas_set_threads((int)n));
}

static PyObject *py_get_num_threads(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyLong_FromLong(sdagd_blas_get_threads());
}

static PyMethodDef module_methods[] = {
    {"train_step", py_train_step, METH_VARARGS, "train_step(net, opt, X, y) -> stats dict"},
    {"train_epoch", (PyCFunction)(void (*)(void))py_train_epoch, METH_VARARGS | METH_KEYWORDS,
     "train_epoch(net, opt, X, y, batch_size, seed, epoch) -> stats dict"},
    {"shuffle_order", py_shuffle_order, METH_VARARGS, "shuffle_order(n, seed, epoch) -> int64 permutation"},
    {"set_num_threads", py_set_num_threads, METH_O, "set BLAS threads; returns the previous number"},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "BLAS threads in use"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "sdagd._core",
                                       "Binding of the sdagd C core; use the sdagd package instead.", -1,
                                       module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void) {
    import_array();
    main_thread_id = PyThread_get_thread_ident();
    if (PyType_Ready(&NetType) < 0 || PyType_Ready(&OptimizerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    DivergenceError = PyErr_NewExceptionWithDoc(
        "sdagd._core.DivergenceError", "Training produced a NaN or infinite loss or parameter.",
        PyExc_FloatingPointError, NULL);
    if (!DivergenceError || PyModule_AddObjectRef(m, "DivergenceError", DivergenceError) < 0 ||
        PyModule_AddObjectRef(m, "Net", (PyObject *)&NetType) < 0 ||
        PyModule_AddObjectRef(m, "Optimizer", (PyObject *)&OptimizerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
