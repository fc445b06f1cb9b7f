package mysqlwire

// AppendTextRow appends the payload (no header) of a text protocol result
// row. A nil field is SQL NULL; an empty non-nil field is the empty string.
// A proxy uses it to answer statements itself (CONNECTION_ID(),
// @@max_allowed_packet and the like).
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func AppendTextRow(dst []byte, fields [][]byte) []byte {
	for _, f := range fields {
		if f == nil {
			dst = append(dst, lenEncNull)
			continue
		}
		dst = AppendLenEncString(dst, f)
	}
	return dst
}

// TextRowIter walks the fields of a text protocol row without allocating.
type TextRowIter struct{ r reader }

// NewTextRowIter returns an iterator over the fields of a text row payload.
//
// Kept although the proxy does not call it: tests decode with it what the proxy relays undecoded.
func NewTextRowIter(payload []byte) TextRowIter { return TextRowIter{r: reader{b: payload}} }

// Next returns the next field; isNull reports SQL NULL. ok is false at the
// end of the row or on a malformed field (check Err).
func (it *TextRowIter) Next() (field []byte, isNull, ok bool) {
	if it.r.err != nil || it.r.remaining() == 0 {
		return nil, false, false
	}
	s, isNull, n, err := ReadLenEncString(it.r.b[it.r.off:])
	if err != nil {
		it.r.fail(err)
		return nil, false, false
	}
	it.r.off += n
	return s, isNull, true
}

// Err returns the error that stopped the iteration, if any.
func (it *TextRowIter) Err() error { return it.r.err }
