package mysqlwire

import "fmt"

// ProtocolVersion10 is the only greeting format in use since MySQL 3.21.
const ProtocolVersion10 = 10

// Handshake is the server greeting (Protocol::HandshakeV10). Slices alias
// the parsed payload.
type Handshake struct {
	ServerVersion []byte
	ConnectionID  uint32
	// AuthPluginData is the whole nonce: part 1 (8 bytes) followed by
	// part 2 without its trailing NUL (normally 12 bytes). When parsed it
	// is a fresh slice because the two parts are not contiguous on the wire.
	AuthPluginData []byte
	// Capabilities includes MariaDB's extended bits when the server cleared
	// CLIENT_MYSQL.
	Capabilities   Capabilities
	CharacterSet   uint8
	Status         StatusFlags
	AuthPluginName []byte
}

// ParseHandshake decodes a server greeting. It copies the nonce (the only
// allocation) because its two halves are split on the wire.
func ParseHandshake(payload []byte) (Handshake, error) {
	var h Handshake
	r := reader{b: payload}
	if v := r.u8(); r.err == nil && v != ProtocolVersion10 {
		if v == HeaderERR {
			return Handshake{}, fmt.Errorf("%w: server sent ERR instead of greeting", ErrMalformed)
		}
		return Handshake{}, fmt.Errorf("%w: unsupported protocol version %d", ErrMalformed, v)
	}
	h.ServerVersion = r.nulString()
	h.ConnectionID = r.u32()
	part1 := r.bytes(8)
	r.u8() // filler
	capsLow := r.u16()
	if r.err != nil {
		return Handshake{}, fmt.Errorf("parse handshake: %w", r.err)
	}
	h.Capabilities = Capabilities(capsLow)
	h.AuthPluginData = append(make([]byte, 0, ScrambleLength), part1...)
	if r.remaining() == 0 {
		// Pre-4.1 servers stop here.
		return h, nil
	}
	h.CharacterSet = r.u8()
	h.Status = StatusFlags(r.u16())
	h.Capabilities |= Capabilities(r.u16()) << 16
	authDataLen := int(r.u8())
	r.bytes(6) // reserved
	ext := r.u32()
	if r.err != nil {
		return Handshake{}, fmt.Errorf("parse handshake: %w", r.err)
	}
	if h.Capabilities.usesMariaDBExtended() {
		h.Capabilities |= Capabilities(ext) << 32
	}
	if h.Capabilities&ClientSecureConnection != 0 {
		part2 := r.bytes(max(13, authDataLen-8))
		if len(part2) > 0 && part2[len(part2)-1] == 0 {
			part2 = part2[:len(part2)-1]
		}
		h.AuthPluginData = append(h.AuthPluginData, part2...)
	}
	if h.Capabilities&ClientPluginAuth != 0 {
		// MySQL before 5.5.10 omitted the terminating NUL.
		h.AuthPluginName = r.nulStringOrRest()
	}
	if r.err != nil {
		return Handshake{}, fmt.Errorf("parse handshake: %w", r.err)
	}
	return h, nil
}

// AppendHandshake appends a greeting packet (sequence id 0) and returns the
// next sequence id. AuthPluginData should be ScrambleLength bytes. MariaDB
// extended capabilities are written only when CLIENT_MYSQL is clear.
func AppendHandshake(dst []byte, h Handshake) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = append(dst, ProtocolVersion10)
	dst = append(append(dst, h.ServerVersion...), 0)
	dst = appendUint32(dst, h.ConnectionID)
	var part1 [8]byte
	copy(part1[:], h.AuthPluginData)
	dst = append(dst, part1[:]...)
	dst = append(dst, 0)
	dst = appendUint16(dst, uint16(h.Capabilities))
	dst = append(dst, h.CharacterSet)
	dst = appendUint16(dst, uint16(h.Status))
	dst = appendUint16(dst, uint16(h.Capabilities>>16))
	if h.Capabilities&ClientPluginAuth != 0 {
		dst = append(dst, byte(len(h.AuthPluginData)+1))
	} else {
		dst = append(dst, 0)
	}
	dst = append(dst, 0, 0, 0, 0, 0, 0)
	if h.Capabilities.usesMariaDBExtended() {
		dst = appendUint32(dst, h.Capabilities.Extended())
	} else {
		dst = append(dst, 0, 0, 0, 0)
	}
	if h.Capabilities&ClientSecureConnection != 0 {
		var part2 []byte
		if len(h.AuthPluginData) > 8 {
			part2 = h.AuthPluginData[8:]
		}
		dst = append(dst, part2...)
		for i := len(part2); i < 12; i++ {
			dst = append(dst, 0)
		}
		dst = append(dst, 0)
	}
	if h.Capabilities&ClientPluginAuth != 0 {
		dst = append(append(dst, h.AuthPluginName...), 0)
	}
	return FinishPacket(dst, at, 0)
}

// sslRequestLength is the payload length of an SSLRequest: the fixed prefix
// of a HandshakeResponse41 without any strings.
const sslRequestLength = 32

// IsSSLRequest reports whether a client's first reply is an SSLRequest (the
// client wants to upgrade to TLS before sending its real handshake response).
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func IsSSLRequest(payload []byte) bool {
	if len(payload) != sslRequestLength {
		return false
	}
	caps := Capabilities(uint32(payload[0]) | uint32(payload[1])<<8 | uint32(payload[2])<<16 | uint32(payload[3])<<24)
	return caps&ClientSSL != 0
}

// HandshakeResponse is the client's Protocol::HandshakeResponse41 (and,
// truncated after the fixed part, an SSLRequest). Slices alias the payload
// except where noted.
type HandshakeResponse struct {
	// Capabilities includes MariaDB's extended bits when the client
	// cleared CLIENT_MYSQL.
	Capabilities  Capabilities
	MaxPacketSize uint32
	CharacterSet  uint8
	Username      []byte
	AuthResponse  []byte
	Database      []byte
	AuthPlugin    []byte
	// Attrs holds the raw connect attributes (without the total length
	// prefix); walk them with NewAttrIter.
	Attrs []byte
	// ZstdLevel is the compression level of MySQL 8's zstd extension.
	ZstdLevel uint8
	// SSLRequest is set when the payload was only the 32-byte SSLRequest.
	SSLRequest bool
}

// ParseHandshakeResponse decodes a HandshakeResponse41 or an SSLRequest.
// Pre-4.1 (HandshakeResponse320) clients are rejected.
func ParseHandshakeResponse(payload []byte) (HandshakeResponse, error) {
	var hr HandshakeResponse
	r := reader{b: payload}
	hr.Capabilities = Capabilities(r.u32())
	hr.MaxPacketSize = r.u32()
	hr.CharacterSet = r.u8()
	r.bytes(19)
	ext := r.u32()
	if r.err != nil {
		return HandshakeResponse{}, fmt.Errorf("parse handshake response: %w", r.err)
	}
	if hr.Capabilities&ClientProtocol41 == 0 {
		return HandshakeResponse{}, fmt.Errorf("%w: client does not speak protocol 4.1", ErrMalformed)
	}
	if hr.Capabilities.usesMariaDBExtended() {
		hr.Capabilities |= Capabilities(ext) << 32
	}
	if r.remaining() == 0 {
		if hr.Capabilities&ClientSSL == 0 {
			return HandshakeResponse{}, fmt.Errorf("parse handshake response: %w", ErrTruncated)
		}
		hr.SSLRequest = true
		return hr, nil
	}
	hr.Username = r.nulString()
	switch {
	case hr.Capabilities&ClientPluginAuthLenEncClientData != 0:
		hr.AuthResponse = r.lenEncString()
	case hr.Capabilities&ClientSecureConnection != 0:
		hr.AuthResponse = r.bytes(int(r.u8()))
	default:
		hr.AuthResponse = r.nulString()
	}
	if hr.Capabilities&ClientConnectWithDB != 0 && r.remaining() > 0 {
		hr.Database = r.nulString()
	}
	if hr.Capabilities&ClientPluginAuth != 0 && r.remaining() > 0 {
		hr.AuthPlugin = r.nulStringOrRest()
	}
	if hr.Capabilities&ClientConnectAttrs != 0 && r.remaining() > 0 {
		hr.Attrs = r.lenEncString()
		if r.err == nil {
			it := NewAttrIter(hr.Attrs)
			for {
				if _, _, ok := it.Next(); !ok {
					break
				}
			}
			if it.Err() != nil {
				return HandshakeResponse{}, fmt.Errorf("parse connect attributes: %w", it.Err())
			}
		}
	}
	if hr.Capabilities&ClientZstdCompressionAlgorithm != 0 && r.remaining() > 0 {
		hr.ZstdLevel = r.u8()
	}
	if r.err != nil {
		return HandshakeResponse{}, fmt.Errorf("parse handshake response: %w", r.err)
	}
	return hr, nil
}

// AppendHandshakeResponse appends hr as a packet with sequence id seq (1
// normally, 2 after an SSLRequest) and returns the next sequence id. The auth
// response encoding follows the capabilities: length-encoded with
// CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, 1-byte length with
// CLIENT_SECURE_CONNECTION, NUL-terminated otherwise. With SSLRequest set
// only the 32-byte fixed part is written.
func AppendHandshakeResponse(dst []byte, seq uint8, hr HandshakeResponse) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = appendUint32(dst, hr.Capabilities.Standard())
	dst = appendUint32(dst, hr.MaxPacketSize)
	dst = append(dst, hr.CharacterSet)
	dst = append(dst, make([]byte, 19)...)
	if hr.Capabilities.usesMariaDBExtended() {
		dst = appendUint32(dst, hr.Capabilities.Extended())
	} else {
		dst = append(dst, 0, 0, 0, 0)
	}
	if hr.SSLRequest {
		return FinishPacket(dst, at, seq)
	}
	dst = append(append(dst, hr.Username...), 0)
	switch {
	case hr.Capabilities&ClientPluginAuthLenEncClientData != 0:
		dst = AppendLenEncString(dst, hr.AuthResponse)
	case hr.Capabilities&ClientSecureConnection != 0:
		auth := hr.AuthResponse
		if len(auth) > 255 {
			auth = auth[:255] // cannot be represented; the server will reject it
		}
		dst = append(dst, byte(len(auth)))
		dst = append(dst, auth...)
	default:
		dst = append(append(dst, hr.AuthResponse...), 0)
	}
	if hr.Capabilities&ClientConnectWithDB != 0 {
		dst = append(append(dst, hr.Database...), 0)
	}
	if hr.Capabilities&ClientPluginAuth != 0 {
		dst = append(append(dst, hr.AuthPlugin...), 0)
	}
	if hr.Capabilities&ClientConnectAttrs != 0 {
		dst = AppendLenEncString(dst, hr.Attrs)
	}
	if hr.Capabilities&ClientZstdCompressionAlgorithm != 0 {
		dst = append(dst, hr.ZstdLevel)
	}
	return FinishPacket(dst, at, seq)
}

// AttrIter walks connect attributes (key/value pairs of length-encoded
// strings) without allocating.
type AttrIter struct{ r reader }

// NewAttrIter returns an iterator over raw attributes.
func NewAttrIter(attrs []byte) AttrIter { return AttrIter{r: reader{b: attrs}} }

// Next returns the next key/value pair; ok is false at the end or on error.
func (it *AttrIter) Next() (key, value []byte, ok bool) {
	if it.r.err != nil || it.r.remaining() == 0 {
		return nil, nil, false
	}
	key = it.r.lenEncString()
	value = it.r.lenEncString()
	if it.r.err != nil {
		return nil, nil, false
	}
	return key, value, true
}

// Err returns the error that stopped iteration, if any.
func (it *AttrIter) Err() error { return it.r.err }

// AppendAttr appends one connect attribute to a raw attribute block.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func AppendAttr(dst []byte, key, value string) []byte {
	return AppendLenEncStr(AppendLenEncStr(dst, key), value)
}

// AuthSwitchRequest asks the client to restart authentication with another
// plugin (0xFE header).
type AuthSwitchRequest struct {
	PluginName []byte
	// PluginData is the new nonce; the trailing NUL that servers append to
	// the 20-byte scrambles is stripped. client_ed25519's 32-byte nonce
	// has no terminator and is kept whole: its last byte is zero one time
	// in 256 (go-sql-driver strips it and fails such logins).
	PluginData []byte
}

// IsAuthSwitchRequest reports whether a packet received during
// authentication is an AuthSwitchRequest. (During authentication 0xFE
// cannot be an EOF.)
func IsAuthSwitchRequest(payload []byte) bool {
	return len(payload) > 0 && payload[0] == HeaderEOF
}

// ParseAuthSwitchRequest decodes an AuthSwitchRequest. A lone 0xFE is the
// old-password switch request of 4.0-era servers and yields an empty plugin
// name.
func ParseAuthSwitchRequest(payload []byte) (AuthSwitchRequest, error) {
	if !IsAuthSwitchRequest(payload) {
		return AuthSwitchRequest{}, fmt.Errorf("%w: not an auth switch request", ErrMalformed)
	}
	r := reader{b: payload, off: 1}
	var a AuthSwitchRequest
	if r.remaining() == 0 {
		return a, nil
	}
	a.PluginName = r.nulString()
	a.PluginData = r.rest()
	if n := len(a.PluginData); n > 0 && a.PluginData[n-1] == 0 && string(a.PluginName) != AuthEd25519 {
		a.PluginData = a.PluginData[:n-1]
	}
	if r.err != nil {
		return AuthSwitchRequest{}, fmt.Errorf("parse auth switch request: %w", r.err)
	}
	return a, nil
}

// AppendAuthSwitchRequest appends an AuthSwitchRequest (the nonce followed
// by a NUL, as servers send it) and returns the next sequence id.
func AppendAuthSwitchRequest(dst []byte, seq uint8, plugin string, data []byte) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = append(dst, HeaderEOF)
	dst = AppendNulString(dst, plugin)
	dst = append(append(dst, data...), 0)
	return FinishPacket(dst, at, seq)
}

// AppendAuthSwitchResponse appends the client's reply to an auth switch or
// auth-more-data packet: the raw auth data as the whole payload.
func AppendAuthSwitchResponse(dst []byte, seq uint8, data []byte) ([]byte, uint8) {
	return AppendPacket(dst, seq, data)
}

// IsAuthMoreData reports whether payload is an AuthMoreData packet (0x01),
// used by caching_sha2_password and sha256_password.
func IsAuthMoreData(payload []byte) bool { return len(payload) > 0 && payload[0] == HeaderAuthMore }

// AuthMoreData returns the data of an AuthMoreData packet.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func AuthMoreData(payload []byte) ([]byte, error) {
	if !IsAuthMoreData(payload) {
		return nil, fmt.Errorf("%w: not an auth more data packet", ErrMalformed)
	}
	return payload[1:], nil
}

// AppendAuthMoreData appends an AuthMoreData packet (0x01 + data) and
// returns the next sequence id.
func AppendAuthMoreData(dst []byte, seq uint8, data []byte) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = append(append(dst, HeaderAuthMore), data...)
	return FinishPacket(dst, at, seq)
}
