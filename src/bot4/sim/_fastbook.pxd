# Declarations of the compiled book, for the compiled matching core (_fastmatch.pyx).

cdef class BookCore:
    cdef public object symbol
    cdef public dict bids
    cdef public dict asks
    cdef public list bid_keys
    cdef public list ask_keys
    cdef public dict orders
    cdef list _spare

    cdef list _new_record(self, object order_id, object is_buy, object price, object qty,
                          object display, object account, object owner)
    cdef int _recycle(self, list lvl) except -1
    cdef int _remove(self, list rec) except -1
    cdef int _drop_level(self, list lvl) except -1
    cdef int _upsert(self, object order_id, object is_buy, object price, object qty) except -1
