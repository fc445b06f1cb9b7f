package httpd

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/scalestack/scalestack/httpwire"
	"golang.org/x/sys/unix"
)

// Static serves the files under a directory for GET and HEAD: Content-Type
// by extension, Content-Length, Last-Modified, an ETag (nginx's form, the
// modification time and size in hex) with If-None-Match and
// If-Modified-Since answered by 304, one byte range per request (206, or 416
// with the size when it cannot be satisfied; several ranges get the whole
// file, which RFC 9110 allows), and index.html for a directory.
//
// No path leaves the directory: the request path is decoded and its dot
// segments resolved before use (a ".." above the root is refused with 400),
// and every file is opened with openat2(RESOLVE_BENEATH) relative to the
// directory, so the kernel refuses any symlink that resolves outside it
// (404); symlinks inside it are followed. Files are opened non-blocking so
// a FIFO cannot stall the loop, and only regular files are served.
//
// Bodies are read with pread into the connection's output: a file up to
// 64 KiB straight into the output queue, a larger one 64 KiB at a time into
// pooled buffers as the socket drains (BodySource), never whole. Not
// sendfile(2): conn owns the socket's write side and its queue holds bytes,
// so file segments would need a second kind of queue entry in conn and an
// io_uring equivalent (splice through a pipe) for the other driver; for the
// small files a web server mostly sends, the copy is cheap next to the
// system calls, and both drivers take the same path. The open, fstat and
// pread run on the loop: on a page-cache miss they wait for the disk, as in
// nginx without thread pools.
//
// With Cache set, each loop keeps small files (metadata, response fields
// and content) and answers them without any system call until Valid has
// passed: see FileCacheConfig. Those four system calls were a third of the
// module's CPU per request for an 11-byte file (perf, bench/http).
type Static struct {
	dir   string
	dirFD int
	// Index is the file served for a directory path ending in '/'.
	Index string
	// Cache sizes the per-loop cache of small files (see FileCacheConfig);
	// the zero value caches nothing. Set it before serving.
	Cache FileCacheConfig

	cachesOnce sync.Once
	caches     atomic.Pointer[[]atomic.Pointer[fileCache]] // by loop ID
}

// NewStatic opens dir for serving; Close releases it.
func NewStatic(dir string) (*Static, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("httpd: open root %s: %w", dir, err)
	}
	return &Static{dir: dir, dirFD: fd, Index: "index.html"}, nil
}

// Close closes the directory.
func (s *Static) Close() error { return unix.Close(s.dirFD) }

// smallFile is the largest body read into the output in one go.
const smallFile = 64 << 10

// Serve implements Handler.
func (s *Static) Serve(w *Response, req *httpwire.Request) {
	get := req.IsMethod("GET")
	if !get && !req.IsMethod("HEAD") {
		w.Header("Allow", "GET, HEAD")
		w.Error(405)
		return
	}
	st := w.st
	p, err := httpwire.AppendCleanPath(st.pathBuf[:0], w.Below(req.Path))
	st.pathBuf = p
	if err != nil {
		w.Error(400)
		return
	}
	dirWanted := p[len(p)-1] == '/'
	if dirWanted {
		p = append(p, s.Index...)
	}
	p = append(p, 0)
	st.pathBuf = p
	name := p[1:] // relative to the root; never empty: at least the NUL after "."
	if len(name) == 1 {
		name = dotName
	}
	cache := s.loopCache(w)
	if cache != nil {
		if e := cache.lookup(s, name, w.Loop().Now()); e != nil {
			s.serveCached(w, req, e, get)
			return
		}
	}
	fd, err := s.open(name)
	if err != nil {
		switch err {
		case unix.ENOENT, unix.ENOTDIR, unix.EXDEV, unix.ELOOP, unix.ENAMETOOLONG, unix.ENXIO:
			w.Error(404) // EXDEV, ELOOP: a symlink leading out of the root
		case unix.EACCES, unix.EPERM:
			w.Error(403)
		default:
			w.Error(500)
		}
		return
	}
	var fi unix.Stat_t
	if err := unix.Fstat(fd, &fi); err != nil {
		unix.Close(fd)
		w.Error(500)
		return
	}
	switch fi.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		unix.Close(fd)
		if dirWanted {
			w.Error(404) // the index is a directory
			return
		}
		// Like nginx: send the client to the directory's own path.
		loc := append(st.pathBuf[:0], req.Path...)
		loc = append(loc, '/')
		if len(req.Query) > 0 {
			loc = append(append(loc, '?'), req.Query...)
		}
		st.pathBuf = loc
		w.HeaderBytes("Location", loc)
		w.Error(301)
		return
	default:
		unix.Close(fd)
		w.Error(404)
		return
	}
	if cache != nil && cache.wants(&fi, w.Loop().Now()) {
		e, err := cache.insert(name, fd, &fi, w.Loop().Now())
		unix.Close(fd)
		if err != nil {
			w.Error(500)
			return
		}
		s.serveCached(w, req, e, get)
		return
	}
	mtime := time.Unix(fi.Mtim.Sec, 0)
	var etagBuf [40]byte
	etag := appendETag(etagBuf[:0], &fi)
	var lmBuf [32]byte
	lastMod := httpwire.AppendHTTPDate(lmBuf[:0], mtime)
	off, length, send := writeFileHead(w, req, get, fi.Size, mtime, etag, lastMod, contentType(name[:len(name)-1]))
	if !send {
		unix.Close(fd)
		return
	}
	if length <= smallFile {
		dst := w.Reserve(int(length))
		err := preadFull(fd, dst, off)
		unix.Close(fd)
		if err != nil {
			w.Abort(err) // the header promised bytes the file no longer has
			return
		}
		w.End()
		return
	}
	w.Stream(&fileSource{fd: fd, off: off, left: length})
}

// serveCached answers from a cache entry: no system call.
func (s *Static) serveCached(w *Response, req *httpwire.Request, e *cachedFile, get bool) {
	off, length, send := writeFileHead(w, req, get, int64(len(e.body)), e.mtime, e.etag, e.lastMod, e.ctype)
	if send {
		copy(w.Reserve(int(length)), e.body[off:off+length])
		w.End()
	}
}

// writeFileHead answers the conditional and range fields of a request for
// a regular file of size bytes and writes the response head. It returns
// the byte range to send and whether the caller sends it and ends the
// response (false: the response is complete: 304, 416, HEAD, empty).
func writeFileHead(w *Response, req *httpwire.Request, get bool, size int64, mtime time.Time, etag, lastMod []byte, ctype string) (off, length int64, send bool) {
	if notModified(req, etag, mtime) {
		w.HeaderBytes("ETag", etag)
		w.HeaderBytes("Last-Modified", lastMod)
		w.WriteHeader(304, -1)
		w.End()
		return 0, 0, false
	}
	status := 200
	off, length = 0, size
	if rng := req.Header("range"); rng != nil && get && ifRangeHolds(req, etag, mtime) {
		start, end, r := parseRange(rng, size)
		switch r {
		case rangeOK:
			status, off, length = 206, start, end-start+1
		case rangeUnsatisfiable:
			var crBuf [40]byte
			cr := append(crBuf[:0], "bytes */"...)
			cr = strconv.AppendInt(cr, size, 10)
			w.HeaderBytes("Content-Range", cr)
			w.Error(416)
			return 0, 0, false
		}
	}
	w.Header("Content-Type", ctype)
	w.HeaderBytes("Last-Modified", lastMod)
	w.HeaderBytes("ETag", etag)
	w.Header("Accept-Ranges", "bytes")
	if status == 206 {
		var crBuf [64]byte
		cr := append(crBuf[:0], "bytes "...)
		cr = strconv.AppendInt(cr, off, 10)
		cr = append(cr, '-')
		cr = strconv.AppendInt(cr, off+length-1, 10)
		cr = append(cr, '/')
		cr = strconv.AppendInt(cr, size, 10)
		w.HeaderBytes("Content-Range", cr)
	}
	w.WriteHeader(status, length)
	if !get || length == 0 {
		w.End()
		return 0, 0, false
	}
	return off, length, true
}

var dotName = []byte(".\x00")

// open opens the NUL-terminated name beneath the root with openat2,
// without the allocation unix.Openat2 makes for its string argument.
func (s *Static) open(name []byte) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT2, uintptr(s.dirFD), uintptr(unsafe.Pointer(&name[0])),
		uintptr(unsafe.Pointer(&how)), unix.SizeofOpenHow, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

var errFileShrank = errors.New("httpd: file shorter than when its response started")

func preadFull(fd int, dst []byte, off int64) error {
	for len(dst) > 0 {
		n, err := unix.Pread(fd, dst, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("httpd: read file: %w", err)
		}
		if n == 0 {
			return errFileShrank
		}
		dst, off = dst[n:], off+int64(n)
	}
	return nil
}

// fileSource streams a byte range of an open file.
type fileSource struct {
	fd   int
	off  int64
	left int64
}

func (f *fileSource) ReadBody(dst []byte) (int, error) {
	if f.left == 0 {
		return 0, io.EOF
	}
	if int64(len(dst)) > f.left {
		dst = dst[:f.left]
	}
	if err := preadFull(f.fd, dst, f.off); err != nil {
		return 0, err
	}
	f.off += int64(len(dst))
	f.left -= int64(len(dst))
	return len(dst), nil
}

func (f *fileSource) Close() {
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
}

// notModified applies If-None-Match, or without it If-Modified-Since (RFC
// 9110 section 13.2.2).
func notModified(req *httpwire.Request, etag []byte, mtime time.Time) bool {
	if inm := req.Header("if-none-match"); inm != nil {
		return etagListMatches(inm, etag)
	}
	if ims := req.Header("if-modified-since"); ims != nil {
		if t, ok := httpwire.ParseHTTPDate(ims); ok {
			return !mtime.After(t)
		}
	}
	return false
}

// etagListMatches is the weak comparison of If-None-Match: "*" or any
// listed tag with the same opaque part.
func etagListMatches(list, etag []byte) bool {
	for len(list) > 0 {
		for len(list) > 0 && (list[0] == ' ' || list[0] == '\t' || list[0] == ',') {
			list = list[1:]
		}
		if len(list) == 0 {
			break
		}
		if list[0] == '*' {
			return true
		}
		if len(list) > 2 && list[0] == 'W' && list[1] == '/' {
			list = list[2:]
		}
		if list[0] != '"' {
			return false // malformed: no match, a full response is always safe
		}
		end := 1
		for end < len(list) && list[end] != '"' {
			end++
		}
		if end == len(list) {
			return false
		}
		if string(list[:end+1]) == string(etag) {
			return true
		}
		list = list[end+1:]
	}
	return false
}

// ifRangeHolds says whether a Range may be honoured: without If-Range, or
// when If-Range names the current representation (a strong ETag match or
// the exact Last-Modified date).
func ifRangeHolds(req *httpwire.Request, etag []byte, mtime time.Time) bool {
	ir := req.Header("if-range")
	if ir == nil {
		return true
	}
	if len(ir) > 0 && ir[0] == '"' {
		return string(ir) == string(etag)
	}
	t, ok := httpwire.ParseHTTPDate(ir)
	return ok && t.Equal(mtime)
}

type rangeResult uint8

const (
	rangeIgnore rangeResult = iota // absent, malformed or several ranges: send it all
	rangeOK
	rangeUnsatisfiable
)

// parseRange reads a single "bytes=" range (RFC 9110 section 14.1.2) for a
// representation of size bytes; end is inclusive.
func parseRange(v []byte, size int64) (start, end int64, r rangeResult) {
	const unit = "bytes="
	if len(v) < len(unit) || !asciiEqualFold(v[:len(unit)], unit) {
		return 0, 0, rangeIgnore
	}
	spec := trimOWS(v[len(unit):])
	for _, c := range spec {
		if c == ',' {
			return 0, 0, rangeIgnore
		}
	}
	dash := -1
	for i, c := range spec {
		if c == '-' {
			dash = i
			break
		}
	}
	if dash < 0 {
		return 0, 0, rangeIgnore
	}
	first, last := spec[:dash], spec[dash+1:]
	if len(first) == 0 {
		n, ok := parseDigits(last)
		if !ok {
			return 0, 0, rangeIgnore
		}
		if n == 0 || size == 0 {
			return 0, 0, rangeUnsatisfiable
		}
		if n > size {
			n = size
		}
		return size - n, size - 1, rangeOK
	}
	a, ok := parseDigits(first)
	if !ok {
		return 0, 0, rangeIgnore
	}
	b := size - 1
	if len(last) > 0 {
		if b, ok = parseDigits(last); !ok {
			return 0, 0, rangeIgnore
		}
		if b < a {
			// Invalid; RFC 9110 lets a server ignore or refuse it. nginx
			// refuses, and so do we, so that both answer alike.
			return 0, 0, rangeUnsatisfiable
		}
		if b >= size {
			b = size - 1
		}
	}
	if a >= size {
		return 0, 0, rangeUnsatisfiable
	}
	return a, b, rangeOK
}

func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// contentType picks a media type by the name's extension.
func contentType(name []byte) string {
	dot := -1
	for i := len(name) - 1; i >= 0 && name[i] != '/'; i-- {
		if name[i] == '.' {
			dot = i
			break
		}
	}
	if dot < 0 {
		return "application/octet-stream"
	}
	var extBuf [8]byte
	ext := name[dot+1:]
	if len(ext) > len(extBuf) {
		return "application/octet-stream"
	}
	for i, c := range ext {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		extBuf[i] = c
	}
	if t, ok := mimeTypes[string(extBuf[:len(ext)])]; ok {
		return t
	}
	return "application/octet-stream"
}

// mimeTypes covers what nginx's default mime.types maps for the web's
// common files; the rest is application/octet-stream, as in nginx.
var mimeTypes = map[string]string{
	"html": "text/html", "htm": "text/html", "css": "text/css", "txt": "text/plain",
	"js": "application/javascript", "mjs": "application/javascript", "json": "application/json",
	"xml": "text/xml", "csv": "text/csv", "md": "text/markdown",
	"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
	"svg": "image/svg+xml", "ico": "image/x-icon", "webp": "image/webp", "avif": "image/avif",
	"woff": "font/woff", "woff2": "font/woff2", "wasm": "application/wasm", "pdf": "application/pdf",
	"zip": "application/zip", "gz": "application/gzip", "tar": "application/x-tar",
	"mp4": "video/mp4", "webm": "video/webm", "mp3": "audio/mpeg", "ogg": "audio/ogg",
}
