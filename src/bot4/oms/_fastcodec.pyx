# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled event encoders: ``event_codec.wal_line`` and ``payload_json`` for the event
classes (docs/live.md, "The journal's write-ahead file").

The generated Python encoders of ``bot4.oms.event_codec`` stay the reference (and the
general definition, ``json.dumps(ev.to_payload())``, theirs); this module does what they
do with less interpreter work.  Per class, at install, a plan is built from the same
per-field description the generated code comes from (``event_codec.field_plan``): the
member offset of every field, its kind (int, bool, str, an enum, anything else), the
JSON key text that goes before it, and each enum member's JSON text.  One C loop then
reads every slot at its offset, checks the value's exact type as the generated guards
do (``type(v) is int`` -- a bool or an int subclass is not an int --, ``is bool``,
``is str``, ``is`` the annotated enum class) and appends text into a C buffer; the
result is one ASCII ``str``.

What is cheaper, and why it is the same text:

* No attribute lookups (a slot read is a pointer load, as the member descriptor does),
  no f-string formatting calls, no ``Enum.__hash__`` (a Python-level function, paid by
  the reference's member-to-text dict): an enum member is found by identity among its
  class's members.
* A string goes out as its own bytes when it is ASCII, printable and holds no ``"`` or
  ``\\``: exactly what ``json.encoder.encode_basestring_ascii`` writes for it (quotes
  around the unchanged text).  Any other string goes through that very function.
* An int that fits in 64 bits is written by C; a larger one by ``str`` (what the
  f-string's ``{v}`` does for an exact int).
* Anything not of its annotated type, a slot not set, a class whose names do not resolve
  to its own member descriptors (checked at install), a subclass (dispatch is by exact
  class), an error while writing: the reference encoder is called instead, so the text
  -- or the exception -- is the reference's.  ``tests/test_codec_compiled.py`` compares
  the three (compiled, generated, general) on random values of every field type and on
  values of other types.
"""

from cpython.ref cimport PyObject
from cpython.dict cimport PyDict_GetItem
from libc.string cimport memcpy
from libc.stdlib cimport malloc, realloc, free


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    ctypedef struct PyTypeObject:
        pass
    PyTypeObject PyLong_Type
    PyTypeObject PyBool_Type
    PyTypeObject PyUnicode_Type
    PyTypeObject PyTuple_Type
    PyObject* Py_True
    PyTypeObject* Py_TYPE(PyObject* o)
    Py_ssize_t PyTuple_GET_SIZE(PyObject* o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void* PyUnicode_DATA(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1


from json.encoder import encode_basestring_ascii as _escape_obj

cdef object _escape = _escape_obj

cdef enum:
    MAXF = 32  # non-header fields of one class (OrderInitialized has 17)
    MAXM = 64  # enum members over one class's enum fields
    STACK = 512  # bytes: an OrderInitialized line is ~300

# Field kinds, as ``event_codec.field_plan`` names them.
cdef enum:
    K_INT = 0
    K_BOOL = 1
    K_STR = 2
    K_ENUM = 3
    K_OTHER = 4

cdef dict _KIND_CODES = {"int": K_INT, "bool": K_BOOL, "str": K_STR, "enum": K_ENUM, "other": K_OTHER}


cdef Py_ssize_t _off(object cls, str name) except -2:
    """The offset of ``cls.name`` if the class resolves it to a slot, else -1."""
    descr = getattr(cls, name, None)
    if type(descr).__name__ != "member_descriptor" or not issubclass(cls, descr.__objclass__):
        return -1
    return (<PyMemberDescrObject*>descr).d_member.offset


# -- the output buffer -------------------------------------------------------------------
cdef struct Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap
    bint heap


cdef int _grow(Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2
    while cap < b.n + need:
        cap *= 2
    cdef char* p
    if b.heap:
        p = <char*>realloc(b.p, cap)
    else:
        p = <char*>malloc(cap)
        if p != NULL:
            memcpy(p, b.p, b.n)
    if p == NULL:
        raise MemoryError()
    b.p, b.cap, b.heap = p, cap, True
    return 0


cdef inline int _put(Buf* b, const char* s, Py_ssize_t n) except -1:
    if b.n + n > b.cap:
        _grow(b, n)
    memcpy(b.p + b.n, s, n)
    b.n += n
    return 0


cdef inline int _put_ascii(Buf* b, object s) except -1:
    """An ASCII ``str``'s characters (ints' digits, escaped JSON text)."""
    if not PyUnicode_IS_ASCII(s):
        raise ValueError("not ASCII")  # cannot happen: the caller falls back
    return _put(b, <const char*>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s))


cdef const char* _PAIRS = (  # "00" "01" ... "99"
    b"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    b"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    b"8081828384858687888990919293949596979899"
)


cdef inline int _put_int(Buf* b, object v) except -1:
    """``str(v)`` of an exact int."""
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow:
        return _put_ascii(b, str(v))  # may raise (over sys.get_int_max_str_digits())
    cdef char tmp[24]
    cdef int i = 24
    cdef unsigned long long u = (0ULL - <unsigned long long>x) if x < 0 else <unsigned long long>x
    cdef unsigned int r
    while u >= 100:  # two digits a step (a timestamp has 19)
        r = <unsigned int>(u % 100) * 2
        u //= 100
        i -= 2
        tmp[i] = _PAIRS[r]
        tmp[i + 1] = _PAIRS[r + 1]
    if u >= 10:
        r = <unsigned int>u * 2
        i -= 2
        tmp[i] = _PAIRS[r]
        tmp[i + 1] = _PAIRS[r + 1]
    else:
        i -= 1
        tmp[i] = <char>(48 + u)
    if x < 0:
        i -= 1
        tmp[i] = 45  # "-"
    return _put(b, &tmp[i], 24 - i)


cdef inline int _put_str(Buf* b, object s) except -1:
    """``encode_basestring_ascii(s)`` of an exact str."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s), i
    cdef const unsigned char* d
    cdef unsigned char c
    if PyUnicode_IS_ASCII(s):
        d = <const unsigned char*>PyUnicode_DATA(s)
        for i in range(n):
            c = d[i]
            if c < 32 or c > 126 or c == 34 or c == 92:  # control, DEL, '"', '\\'
                break
        else:
            if b.n + n + 2 > b.cap:
                _grow(b, n + 2)
            b.p[b.n] = 34
            memcpy(b.p + b.n + 1, d, n)
            b.p[b.n + n + 1] = 34
            b.n += n + 2
            return 0
    return _put_ascii(b, _escape(s))


# -- plans -------------------------------------------------------------------------------
cdef class _Plan:
    """One event class's encoding: offsets, kinds, key texts, enum texts."""

    cdef Py_ssize_t nf, seq_off, tse_off, tsr_off
    cdef Py_ssize_t off[MAXF]
    cdef int kind[MAXF]
    cdef const char* key[MAXF]
    cdef Py_ssize_t keylen[MAXF]
    cdef PyObject* etype[MAXF]
    cdef Py_ssize_t efirst[MAXF]
    cdef Py_ssize_t ecount[MAXF]
    cdef PyObject* member[MAXM]
    cdef const char* mtext[MAXM]
    cdef Py_ssize_t mlen[MAXM]
    cdef bytes head, close
    cdef list keep  # owns everything the C arrays point into


cdef _Plan _make_plan(object cls, str kind, list fields):
    """None if the class cannot be encoded here (then the pure encoders serve it)."""
    cdef _Plan p = _Plan()
    cdef Py_ssize_t i, m = 0
    p.keep = []
    p.seq_off = _off(cls, "seq")
    p.tse_off = _off(cls, "ts_event")
    p.tsr_off = _off(cls, "ts_recv")
    if min(p.seq_off, p.tse_off, p.tsr_off) < 0 or len(fields) > MAXF:
        return None
    if not kind.isascii() or not kind.isprintable():
        return None
    p.head = ("\t" + kind + "\t").encode("ascii")
    p.nf = len(fields)
    for i, (name, fkind, key, enum_cls, texts) in enumerate(fields):
        p.off[i] = _off(cls, name)
        if p.off[i] < 0 or fkind not in _KIND_CODES or not key.isascii():
            return None
        p.kind[i] = _KIND_CODES[fkind]
        kb = key.encode("ascii")
        p.keep.append(kb)
        p.key[i] = <const char*>kb
        p.keylen[i] = len(kb)
        p.etype[i] = NULL
        p.efirst[i] = m
        p.ecount[i] = 0
        if p.kind[i] == K_ENUM:
            p.keep.append(enum_cls)
            p.etype[i] = <PyObject*>enum_cls
            for member, text in texts.items():
                if m >= MAXM or not text.isascii() or type(member) is not enum_cls:
                    return None
                tb = text.encode("ascii")
                p.keep.append(member)
                p.keep.append(tb)
                p.member[m] = <PyObject*>member
                p.mtext[m] = <const char*>tb
                p.mlen[m] = len(tb)
                m += 1
            p.ecount[i] = m - p.efirst[i]
    p.close = b"}" if p.nf else b"{}"
    return p


def _payload_before_install(ev):
    from bot4.oms import event_codec  # installs this module's plans, where it can

    return event_codec.payload_json_py(ev)


def _line_before_install(ev):
    from bot4.oms import event_codec

    return event_codec.wal_line_py(ev)


cdef object _json_value = None  # event_codec._json_value
# The pure dispatchers, for classes without a plan (this module used before
# ``event_codec`` is imported: the reference, which that import installs).
cdef object _FALLBACK_PAYLOAD = _payload_before_install
cdef object _FALLBACK_LINE = _line_before_install
cdef dict _PLANS = {}


def install(json_value: object, fallback_payload: object, fallback_line: object) -> None:
    """Take ``event_codec``'s value encoder (for "other" fields) and its pure
    ``payload_json`` / ``wal_line``: the reference, for classes without a plan and for
    whatever a plan does not handle (they generate a class's encoders on first use, so
    an import does not pay for classes that never fall back); drop every plan."""
    global _json_value, _FALLBACK_PAYLOAD, _FALLBACK_LINE
    _json_value, _FALLBACK_PAYLOAD, _FALLBACK_LINE = json_value, fallback_payload, fallback_line
    _PLANS.clear()


def add(cls: type, kind: str, fields: list) -> bool:
    """Encode events of exactly ``cls`` here; ``fields``: ``event_codec.field_plan(cls)``
    -- (name, kind, key text, enum class, {member: JSON text}) per non-header field.
    False (the pure encoders stay) if a field is not a slot of ``cls`` or the plan does
    not fit."""
    plan = _make_plan(cls, kind, fields)
    if plan is None:
        _PLANS.pop(cls, None)
        return False
    _PLANS[cls] = plan
    return True


def compiled_classes() -> list:
    """The classes with a plan (for the tests)."""
    return list(_PLANS)


# -- encoding ----------------------------------------------------------------------------
cdef inline PyObject* _slot(object ev, Py_ssize_t off) noexcept:
    return (<PyObject**>((<char*><PyObject*>ev) + off))[0]


cdef inline bint _is_int(PyObject* v) noexcept:
    return v != NULL and Py_TYPE(v) == &PyLong_Type


cdef object _encode(_Plan p, object ev, bint line):
    """The text, or None where the reference must be called (a value not of its type,
    a slot not set, an enum member not in the plan)."""
    cdef char stack[STACK]
    cdef Buf b
    cdef Py_ssize_t i, j, e
    cdef PyObject* v
    cdef PyTypeObject* t
    cdef int k
    b.p, b.n, b.cap, b.heap = stack, 0, STACK, False
    try:
        if line:
            v = _slot(ev, p.seq_off)
            if not _is_int(v):
                return None
            _put_int(&b, <object>v)
            _put(&b, "\t", 1)
            v = _slot(ev, p.tse_off)
            if not _is_int(v):
                return None
            _put_int(&b, <object>v)
            _put(&b, "\t", 1)
            v = _slot(ev, p.tsr_off)
            if not _is_int(v):
                return None
            _put_int(&b, <object>v)
            _put(&b, <const char*>p.head, len(p.head))
        for i in range(p.nf):
            v = _slot(ev, p.off[i])
            if v == NULL:
                return None
            t = Py_TYPE(v)
            _put(&b, p.key[i], p.keylen[i])
            k = p.kind[i]
            if k == K_INT:
                if t != &PyLong_Type:
                    return None
                _put_int(&b, <object>v)
            elif k == K_BOOL:
                if t != &PyBool_Type:
                    return None
                if v == Py_True:
                    _put(&b, "true", 4)
                else:
                    _put(&b, "false", 5)
            elif k == K_STR:
                if t != &PyUnicode_Type:
                    return None
                _put_str(&b, <object>v)
            elif k == K_ENUM:
                if <PyObject*>t != p.etype[i]:
                    return None
                e = p.efirst[i]
                for j in range(e, e + p.ecount[i]):
                    if p.member[j] == v:
                        _put(&b, p.mtext[j], p.mlen[j])
                        break
                else:
                    return None
            else:
                if t != &PyTuple_Type:
                    return None  # ``v == ()`` of anything else: the reference decides
                if PyTuple_GET_SIZE(v) == 0:
                    _put(&b, "[]", 2)
                else:
                    text = _json_value(<object>v)
                    if type(text) is not str or not PyUnicode_IS_ASCII(text):
                        return None
                    _put_ascii(&b, text)
        _put(&b, <const char*>p.close, len(p.close))
        out = PyUnicode_New(b.n, 127)
        memcpy(PyUnicode_DATA(out), b.p, b.n)
        return out
    except Exception:
        return None  # the reference does it again, and raises what it raises
    finally:
        if b.heap:
            free(b.p)


cdef inline object _encode_or(object ev, bint line, object fallback):
    """The compiled text, or ``fallback(ev)`` (the reference) where it does not apply."""
    cdef PyObject* p = PyDict_GetItem(_PLANS, type(ev))
    if p == NULL:
        return fallback(ev)
    out = _encode(<_Plan>p, ev, line)
    return fallback(ev) if out is None else out


def wal_line(ev):
    """``event_codec.wal_line``."""
    return _encode_or(ev, True, _FALLBACK_LINE)


def payload_json(ev):
    """``event_codec.payload_json``."""
    return _encode_or(ev, False, _FALLBACK_PAYLOAD)


def line_or_none(ev):
    """The compiled line, or None where ``wal_line`` would call the reference (tests)."""
    cdef PyObject* p = PyDict_GetItem(_PLANS, type(ev))
    return None if p == NULL else _encode(<_Plan>p, ev, True)


def payload_or_none(ev):
    """The compiled payload, or None where ``payload_json`` would call the reference."""
    cdef PyObject* p = PyDict_GetItem(_PLANS, type(ev))
    return None if p == NULL else _encode(<_Plan>p, ev, False)
