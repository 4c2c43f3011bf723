# Reading and writing a ``__slots__`` member of a pure-Python object by the member
# descriptor's offset: a pointer load or store instead of an attribute lookup.  Shared
# by the compiled modules (cimported; inline, so each module gets its own copy of the
# code and no import-time dependency).  Callers take the offset from the class's own
# member descriptor and check that the object's class still resolves the name to that
# descriptor before using it (a subclass may redefine the name).
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF


cdef inline object slot_get(object obj, Py_ssize_t offset):
    cdef PyObject* value = (<PyObject**>((<char*><PyObject*>obj) + offset))[0]
    if value == NULL:
        raise AttributeError(f"unset slot of {type(obj).__name__}")
    return <object>value


cdef inline void slot_set(object obj, Py_ssize_t offset, object value) noexcept:
    cdef PyObject** slot = <PyObject**>((<char*><PyObject*>obj) + offset)
    cdef PyObject* old = slot[0]
    Py_INCREF(value)
    slot[0] = <PyObject*>value
    Py_XDECREF(old)
