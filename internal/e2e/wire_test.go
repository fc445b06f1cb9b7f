package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A minimal MySQL client written for these tests from the protocol
// documentation: it lets a test send exactly the bytes it wants, close a
// socket in the middle of a result, and check every sequence id, which no
// driver allows. It speaks the text protocol with CLIENT_PROTOCOL_41 and EOF
// packets (no DEPRECATE_EOF), mysql_native_password and the
// caching_sha2_password fast path.

// Capability flags the raw client uses or inspects.
const (
	capLongPassword      = 1 << 0
	capConnectWithDB     = 1 << 3
	capProtocol41        = 1 << 9
	capTransactions      = 1 << 13
	capSecureConnection  = 1 << 15
	capMultiStatements   = 1 << 16
	capMultiResults      = 1 << 17
	capPSMultiResults    = 1 << 18
	capPluginAuth        = 1 << 19
	capPluginAuthLenenc  = 1 << 21
	capSessionTrack      = 1 << 23
	capDeprecateEOF      = 1 << 24
	serverMoreResults    = 0x0008
	serverStatusInTrans  = 0x0001
	comQuit              = 0x01
	comQuery             = 0x03
	comPing              = 0x0e
	comStmtPrepare       = 0x16
	comStmtExecute       = 0x17
	comResetConnection   = 0x1f
	maxPayload           = 1<<24 - 1
	rawClientCharset     = 45 // utf8mb4_general_ci
	rawClientMaxPacket   = 1 << 24
	nativePasswordPlugin = "mysql_native_password"
)

// serverError is an ERR packet.
type serverError struct {
	Code    uint16
	State   string
	Message string
}

func (e *serverError) Error() string {
	return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.State, e.Message)
}

// handshake is what the server's (or proxy's) greeting announced.
type handshake struct {
	version      string
	connectionID uint32
	caps         uint32 // the standard 32 bits
	extCaps      uint32 // MariaDB's extended capabilities (the last 4 reserved bytes)
	authPlugin   string
}

type rawConn struct {
	c     net.Conn
	r     *bufio.Reader
	seq   byte
	hello handshake
}

// rawOptions tune dialRaw.
type rawOptions struct {
	db          string
	rcvBuf      int  // SO_RCVBUF of the client socket (0: default)
	multiStmts  bool // ask for CLIENT_MULTI_STATEMENTS
	noHandshake bool // stop after reading the greeting
	collation   byte // the handshake's character set (0: rawClientCharset)
	// sessionTrack asks for CLIENT_SESSION_TRACK (where offered).
	sessionTrack bool
}

func dialRaw(addr, user, password string, o rawOptions) (*rawConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.rcvBuf > 0 {
		if err := nc.(*net.TCPConn).SetReadBuffer(o.rcvBuf); err != nil {
			nc.Close()
			return nil, err
		}
	}
	c := &rawConn{c: nc, r: bufio.NewReaderSize(nc, 16<<10)}
	if err := c.login(user, password, o); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *rawConn) Close() error { return c.c.Close() }

// abort closes the socket with an RST instead of a FIN.
func (c *rawConn) abort() error {
	_ = c.c.(*net.TCPConn).SetLinger(0)
	return c.c.Close()
}

func (c *rawConn) setDeadline(d time.Duration) { _ = c.c.SetDeadline(time.Now().Add(d)) }

// readPacket reads one packet and checks that its sequence id is the next one.
func (c *rawConn) readPacket() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if hdr[3] != c.seq {
		return nil, fmt.Errorf("protocol: packet sequence id %d, want %d (a stray or reordered packet)", hdr[3], c.seq)
	}
	c.seq++
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return nil, fmt.Errorf("protocol: short packet body: %w", err)
	}
	if n == maxPayload {
		rest, err := c.readPacket()
		if err != nil {
			return nil, err
		}
		p = append(p, rest...)
	}
	return p, nil
}

func (c *rawConn) writePacket(p []byte) error {
	buf := make([]byte, 4, 4+len(p))
	buf[0], buf[1], buf[2], buf[3] = byte(len(p)), byte(len(p)>>8), byte(len(p)>>16), c.seq
	c.seq++
	_, err := c.c.Write(append(buf, p...))
	return err
}

// writeCommand starts a new command exchange.
func (c *rawConn) writeCommand(cmd byte, arg []byte) error {
	c.seq = 0
	return c.writePacket(append([]byte{cmd}, arg...))
}

func parseErr(p []byte) *serverError {
	e := &serverError{}
	if len(p) >= 3 {
		e.Code = binary.LittleEndian.Uint16(p[1:3])
	}
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State, rest = string(rest[1:6]), rest[6:]
	}
	e.Message = string(rest)
	return e
}

func (c *rawConn) login(user, password string, o rawOptions) error {
	c.seq = 0
	p, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if len(p) > 0 && p[0] == 0xff {
		return parseErr(p)
	}
	h, salt, err := parseGreeting(p)
	if err != nil {
		return err
	}
	c.hello = h
	if o.noHandshake {
		return nil
	}
	caps := uint32(capLongPassword | capProtocol41 | capTransactions | capSecureConnection | capMultiResults |
		capPSMultiResults | capPluginAuth)
	if o.db != "" {
		caps |= capConnectWithDB
	}
	if o.multiStmts {
		caps |= capMultiStatements
	}
	if o.sessionTrack {
		caps |= capSessionTrack
	}
	caps &= h.caps | capConnectWithDB | capMultiStatements
	plugin := h.authPlugin
	if plugin != nativePasswordPlugin && plugin != "caching_sha2_password" {
		plugin = nativePasswordPlugin
	}
	auth := scramble(plugin, salt, password)
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, caps)
	b = binary.LittleEndian.AppendUint32(b, rawClientMaxPacket)
	collation := byte(rawClientCharset)
	if o.collation != 0 {
		collation = o.collation
	}
	b = append(b, collation)
	b = append(b, make([]byte, 23)...)
	b = append(append(b, user...), 0)
	b = append(append(b, byte(len(auth))), auth...)
	if o.db != "" {
		b = append(append(b, o.db...), 0)
	}
	b = append(append(b, plugin...), 0)
	if err := c.writePacket(b); err != nil {
		return err
	}
	for {
		p, err := c.readPacket()
		if err != nil {
			return fmt.Errorf("read login answer: %w", err)
		}
		switch {
		case len(p) == 0:
			return errors.New("protocol: empty login answer")
		case p[0] == 0x00:
			return nil
		case p[0] == 0xff:
			return parseErr(p)
		case p[0] == 0xfe: // auth switch: plugin name, then a new salt
			name, data, _ := bytes.Cut(p[1:], []byte{0})
			data = bytes.TrimSuffix(data, []byte{0})
			if err := c.writePacket(scramble(string(name), data, password)); err != nil {
				return err
			}
		case p[0] == 0x01 && len(p) == 2 && p[1] == 3: // caching_sha2 fast auth succeeded; OK follows
		default:
			return fmt.Errorf("protocol: unsupported login answer %x", p[:min(len(p), 16)])
		}
	}
}

func parseGreeting(p []byte) (handshake, []byte, error) {
	var h handshake
	bad := func() (handshake, []byte, error) {
		return h, nil, fmt.Errorf("protocol: malformed greeting %x", p[:min(len(p), 64)])
	}
	if len(p) < 1 || p[0] != 10 {
		return bad()
	}
	i := bytes.IndexByte(p[1:], 0)
	if i < 0 {
		return bad()
	}
	h.version = string(p[1 : 1+i])
	r := p[2+i:]
	if len(r) < 4+8+1+2+1+2+2+1+10 {
		return bad()
	}
	h.connectionID = binary.LittleEndian.Uint32(r)
	salt := append([]byte(nil), r[4:12]...)
	r = r[13:]
	h.caps = uint32(binary.LittleEndian.Uint16(r))
	r = r[2+1+2:] // capabilities, charset, status
	h.caps |= uint32(binary.LittleEndian.Uint16(r)) << 16
	authLen := int(r[2])
	h.extCaps = binary.LittleEndian.Uint32(r[3+6 : 3+10])
	r = r[3+10:]
	if h.caps&capSecureConnection != 0 {
		n := max(13, authLen-8)
		if len(r) < n {
			return bad()
		}
		salt = append(salt, bytes.TrimSuffix(r[:n], []byte{0})...)
		r = r[n:]
	}
	if h.caps&capPluginAuth != 0 {
		name, _, _ := bytes.Cut(r, []byte{0})
		h.authPlugin = string(name)
	}
	return h, salt, nil
}

// scramble computes the auth response of mysql_native_password
// (SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw)))); for caching_sha2_password it
// computes that plugin's fast-path scramble.
func scramble(plugin string, salt []byte, password string) []byte {
	if password == "" {
		return nil
	}
	if plugin == "caching_sha2_password" {
		return sha2Scramble(salt, password)
	}
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	m := sha1.New()
	m.Write(salt[:min(len(salt), 20)])
	m.Write(h2[:])
	h3 := m.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// result is one result of a command: either an OK or a result set.
type result struct {
	columns      []string
	rows         [][]*string
	affected     uint64
	lastInsertID uint64
	status       uint16
}

// query sends COM_QUERY and reads every result (more than one for a
// multi-statement query). An ERR answer is returned as *serverError, with the
// results before it.
func (c *rawConn) query(sql string) ([]result, error) {
	if err := c.writeCommand(comQuery, []byte(sql)); err != nil {
		return nil, err
	}
	return c.readResults()
}

func (c *rawConn) readResults() ([]result, error) {
	var out []result
	for {
		r, err := c.readResult()
		if err != nil {
			return out, err
		}
		out = append(out, r)
		if r.status&serverMoreResults == 0 {
			return out, nil
		}
	}
}

func (c *rawConn) readResult() (result, error) {
	var r result
	p, err := c.readPacket()
	if err != nil {
		return r, err
	}
	if len(p) == 0 {
		return r, errors.New("protocol: empty response packet")
	}
	switch p[0] {
	case 0x00:
		return parseOK(p)
	case 0xff:
		return r, parseErr(p)
	case 0xfb:
		return r, errors.New("protocol: unexpected LOCAL INFILE request")
	}
	ncols, _, ok := lenenc(p)
	if !ok || ncols == 0 || ncols > 4096 {
		return r, fmt.Errorf("protocol: bad column count packet %x", p[:min(len(p), 16)])
	}
	for i := uint64(0); i < ncols; i++ {
		p, err := c.readPacket()
		if err != nil {
			return r, err
		}
		name, err := columnName(p)
		if err != nil {
			return r, err
		}
		r.columns = append(r.columns, name)
	}
	if p, err = c.readPacket(); err != nil {
		return r, err
	}
	if !isEOF(p) {
		return r, fmt.Errorf("protocol: want EOF after column definitions, got %x", p[:min(len(p), 16)])
	}
	for {
		p, err := c.readPacket()
		if err != nil {
			return r, err
		}
		if isEOF(p) {
			r.status = binary.LittleEndian.Uint16(p[3:5])
			return r, nil
		}
		if p[0] == 0xff {
			return r, parseErr(p)
		}
		row := make([]*string, 0, ncols)
		for len(p) > 0 {
			if p[0] == 0xfb {
				row = append(row, nil)
				p = p[1:]
				continue
			}
			n, w, ok := lenenc(p)
			if !ok || uint64(len(p)-w) < n {
				return r, fmt.Errorf("protocol: malformed row")
			}
			s := string(p[w : w+int(n)])
			row = append(row, &s)
			p = p[w+int(n):]
		}
		if len(row) != int(ncols) {
			return r, fmt.Errorf("protocol: row has %d values, want %d", len(row), ncols)
		}
		r.rows = append(r.rows, row)
	}
}

func isEOF(p []byte) bool { return len(p) == 5 && p[0] == 0xfe }

func parseOK(p []byte) (result, error) {
	var r result
	rest := p[1:]
	var w int
	var ok bool
	if r.affected, w, ok = lenenc(rest); !ok {
		return r, errors.New("protocol: malformed OK")
	}
	rest = rest[w:]
	if r.lastInsertID, w, ok = lenenc(rest); !ok {
		return r, errors.New("protocol: malformed OK")
	}
	rest = rest[w:]
	if len(rest) < 4 {
		return r, errors.New("protocol: malformed OK")
	}
	r.status = binary.LittleEndian.Uint16(rest)
	return r, nil
}

// lenenc decodes a length-encoded integer and returns its width.
func lenenc(p []byte) (v uint64, width int, ok bool) {
	if len(p) == 0 {
		return 0, 0, false
	}
	switch b := p[0]; {
	case b < 0xfb:
		return uint64(b), 1, true
	case b == 0xfc && len(p) >= 3:
		return uint64(binary.LittleEndian.Uint16(p[1:])), 3, true
	case b == 0xfd && len(p) >= 4:
		return uint64(p[1]) | uint64(p[2])<<8 | uint64(p[3])<<16, 4, true
	case b == 0xfe && len(p) >= 9:
		return binary.LittleEndian.Uint64(p[1:]), 9, true
	}
	return 0, 0, false
}

// columnName returns the name of a column definition (its fifth string:
// catalog, schema, table, org_table, name).
func columnName(p []byte) (string, error) {
	var s string
	for i := 0; i < 5; i++ {
		n, w, ok := lenenc(p)
		if !ok || uint64(len(p)-w) < n {
			return "", errors.New("protocol: malformed column definition")
		}
		s = string(p[w : w+int(n)])
		p = p[w+int(n):]
	}
	return s, nil
}

// simple runs a query that must produce one result and returns its rows as strings (NULL as "NULL").
func (c *rawConn) simple(sql string) ([][]string, error) {
	rs, err := c.query(sql)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%q: %d results, want 1", sql, len(rs))
	}
	var out [][]string
	for _, row := range rs[0].rows {
		var vals []string
		for _, v := range row {
			if v == nil {
				vals = append(vals, "NULL")
			} else {
				vals = append(vals, *v)
			}
		}
		out = append(out, vals)
	}
	return out, nil
}

// scalar runs a query whose answer is one row of one value.
func (c *rawConn) scalar(sql string) (string, error) {
	rows, err := c.simple(sql)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", fmt.Errorf("%q: got %v, want one value", sql, rows)
	}
	return rows[0][0], nil
}

// exec runs a statement that must answer OK.
func (c *rawConn) exec(sql string) (result, error) {
	rs, err := c.query(sql)
	if err != nil {
		return result{}, err
	}
	if len(rs) != 1 || rs[0].columns != nil {
		return result{}, fmt.Errorf("%q: want one OK, got %d results", sql, len(rs))
	}
	return rs[0], nil
}

func (c *rawConn) ping() error { return c.expectOK(comPing, "ping") }

// resetConnection sends COM_RESET_CONNECTION.
func (c *rawConn) resetConnection() error { return c.expectOK(comResetConnection, "reset") }

// expectOK sends an argument-less command whose answer is OK or ERR.
func (c *rawConn) expectOK(cmd byte, what string) error {
	if err := c.writeCommand(cmd, nil); err != nil {
		return err
	}
	p, err := c.readPacket()
	if err != nil {
		return err
	}
	if p[0] == 0xff {
		return parseErr(p)
	}
	if p[0] != 0x00 {
		return fmt.Errorf("protocol: %s answered %x", what, p[:min(len(p), 16)])
	}
	return nil
}

// prepare sends COM_STMT_PREPARE and returns the statement id and parameter count.
func (c *rawConn) prepare(sql string) (id uint32, params int, err error) {
	if err := c.writeCommand(comStmtPrepare, []byte(sql)); err != nil {
		return 0, 0, err
	}
	p, err := c.readPacket()
	if err != nil {
		return 0, 0, err
	}
	if p[0] == 0xff {
		return 0, 0, parseErr(p)
	}
	if p[0] != 0x00 || len(p) < 12 {
		return 0, 0, fmt.Errorf("protocol: bad prepare answer %x", p[:min(len(p), 16)])
	}
	id = binary.LittleEndian.Uint32(p[1:5])
	cols := int(binary.LittleEndian.Uint16(p[5:7]))
	params = int(binary.LittleEndian.Uint16(p[7:9]))
	for _, n := range []int{params, cols} {
		if n == 0 {
			continue
		}
		for i := 0; i < n+1; i++ { // n definitions and an EOF
			if _, err := c.readPacket(); err != nil {
				return 0, 0, err
			}
		}
	}
	return id, params, nil
}

// expectQuiet checks that nothing at all arrives within d: a proxy that
// leaked a packet into this session would be caught here.
func (c *rawConn) expectQuiet(d time.Duration) error {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	defer c.c.SetReadDeadline(time.Time{})
	b, err := c.r.Peek(1)
	if len(b) > 0 {
		return fmt.Errorf("protocol: unsolicited bytes %x after the last response", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return fmt.Errorf("connection not quiet: %w", err)
}

// sha2Scramble is caching_sha2_password's fast-path response:
// SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce).
func sha2Scramble(nonce []byte, password string) []byte {
	h1 := sha256.Sum256([]byte(password))
	h2 := sha256.Sum256(h1[:])
	m := sha256.New()
	m.Write(h2[:])
	m.Write(nonce[:min(len(nonce), 20)])
	h3 := m.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}
