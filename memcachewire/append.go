package memcachewire

import "strconv"

// AppendStorage appends a storage command (set, add, replace, append,
// prepend or cas; cas is used only for CmdCas) with its data block.
func AppendStorage(dst []byte, cmd Command, key []byte, flags uint32, exptime int64, data []byte, cas uint64, noreply bool) []byte {
	dst = append(dst, cmd.String()...)
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(flags), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, exptime, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(data)), 10)
	if cmd == CmdCas {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, cas, 10)
	}
	if noreply {
		dst = append(dst, " noreply"...)
	}
	dst = append(dst, "\r\n"...)
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendRetrieval appends a get/gets (exptime unused) or gat/gats line
// for keys.
func AppendRetrieval(dst []byte, cmd Command, exptime int64, keys ...[]byte) []byte {
	dst = append(dst, cmd.String()...)
	if cmd == CmdGat || cmd == CmdGats {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, exptime, 10)
	}
	for _, k := range keys {
		dst = append(dst, ' ')
		dst = append(dst, k...)
	}
	return append(dst, "\r\n"...)
}

// AppendValue appends one VALUE item of a retrieval response (with its cas
// when withCas, as gets and gats answer).
func AppendValue(dst, key []byte, flags uint32, data []byte, cas uint64, withCas bool) []byte {
	dst = append(dst, "VALUE "...)
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(flags), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(data)), 10)
	if withCas {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, cas, 10)
	}
	dst = append(dst, "\r\n"...)
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendLine appends a one-line response or request and its \r\n.
func AppendLine(dst []byte, parts ...[]byte) []byte {
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return append(dst, "\r\n"...)
}
