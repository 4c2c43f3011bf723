# Declarations of the compiled book, for the compiled matching core (_fastmatch.pyx).

from cpython.ref cimport PyObject

# Shared by both modules (the C text is emitted into each one that cimports it).
cdef extern from *:
    """
    /* PyDict_GetItem without saving and restoring the error state around the lookup
       (a third of its cost): a key that fails to hash or compare reads as missing,
       as it does there.  There is never an error pending when the engine looks up. */
    static PyObject* bot4_dict_get(PyObject* d, PyObject* key) {
        PyObject* r = PyDict_GetItemWithError(d, key);
        if (r == NULL && PyErr_Occurred()) PyErr_Clear();
        return r;
    }
    """
    PyObject* _dict_get "bot4_dict_get" (object d, object key)


cdef class Rec:
    # fields in book.py's record order: QTY VISIBLE PRICE ORDER_ID IS_BUY DISPLAY
    # ACCOUNT OWNER LEVEL (see Rec in _fastbook.pyx)
    cdef public object qty, visible, price, order_id, is_buy, display, account, owner
    cdef public object level
    cdef list _as_list(self)


cdef class Level:
    # fields in book.py's level order: L_TOTAL L_COUNT L_QUEUE L_PRICE L_IS_BUY
    cdef public object total
    cdef public Py_ssize_t count
    cdef public object queue, price, is_buy


cdef class BookCore:
    cdef public object symbol
    cdef public dict bids
    cdef public dict asks
    cdef public list bid_keys
    cdef public list ask_keys
    cdef public dict orders
    cdef list _spare

    cdef Rec _new_record(self, object order_id, object is_buy, object price, object qty,
                         object display, object account, object owner)
    cdef int _recycle(self, Level lvl) except -1
    cdef int _purge(self, Level lvl) except -1
    cdef int _remove(self, Rec rec) except -1
    cdef int _drop_level(self, Level lvl) except -1
    cdef int _upsert(self, object order_id, object is_buy, object price, object qty) except -1
