# Declarations of the compiled book, for the compiled matching core (_fastmatch.pyx).

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
