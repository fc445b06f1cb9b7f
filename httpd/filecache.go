package httpd

import (
	"hash/maphash"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/httpwire"
	"golang.org/x/sys/unix"
)

// FileCacheConfig sizes the static handler's cache of small files, kept by
// each loop for itself (no locks): a file's metadata, response fields and
// whole content, so that a hit costs no system call at all where an
// uncached request makes four (openat2, fstat, pread, close). It plays the
// part of nginx's open_file_cache, which keeps descriptors and metadata;
// keeping the content too saves the read, and a response never mixes one
// version's length with another's bytes.
//
// An entry is served without looking at the file for Valid; the next
// request after that opens the path again (so a file replaced by a rename,
// deleted, or changed in place is noticed) and keeps the entry only if the
// file is the same one, unchanged (device, inode, size, modification and
// change times). Edits therefore reach clients within Valid. A file is
// cached only once it has been left unchanged for Valid or a second,
// whichever is shorter, so that one still being written is not kept
// half-written.
type FileCacheConfig struct {
	// Entries bounds the files each loop keeps (0: no cache).
	Entries int
	// Bytes bounds the content each loop keeps, all files together; the
	// least recently used entries go first.
	Bytes int64
	// Valid is how long an entry is used without checking the file.
	Valid time.Duration
}

// MaxCachedFile is the largest file the cache keeps.
const MaxCachedFile = smallFile

// FileCacheStats counts the cache's outcomes, summed over the loops.
type FileCacheStats struct {
	Hits          uint64 // answered from the cache
	Revalidations uint64 // entries checked against their file after Valid and kept
	Misses        uint64 // cacheable requests that read the file
	Evictions     uint64 // entries dropped for room, or because the file changed
}

// cachedFile is one file's entry. name is the NUL-terminated path below the
// root, as opened.
type cachedFile struct {
	hash    uint64
	name    []byte
	id      fileID
	mtime   time.Time
	etag    []byte
	lastMod []byte
	ctype   string
	body    []byte
	checked time.Time // when the file was last confirmed unchanged

	prev, next *cachedFile // recency list, most recent after the head
}

// fileID is what revalidation compares.
type fileID struct {
	dev, ino                     uint64
	size                         int64
	mtimeSec, mtimeNsec, ctimeNs int64
}

func fileIDOf(fi *unix.Stat_t) fileID {
	return fileID{dev: fi.Dev, ino: fi.Ino, size: fi.Size, mtimeSec: fi.Mtim.Sec, mtimeNsec: fi.Mtim.Nsec,
		ctimeNs: fi.Ctim.Sec*1e9 + fi.Ctim.Nsec}
}

// fileCache is one loop's cache; only that loop touches it, except the
// counters, which the admin endpoint reads.
type fileCache struct {
	cfg    FileCacheConfig
	seed   maphash.Seed
	byHash map[uint64]*cachedFile
	head   cachedFile // sentinel of the recency list
	bytes  int64
	spare  *cachedFile // the last evicted entry, reused with its buffers

	hits, revalidations, misses, evictions atomic.Uint64
}

func newFileCache(cfg FileCacheConfig) *fileCache {
	c := &fileCache{cfg: cfg, seed: maphash.MakeSeed(), byHash: make(map[uint64]*cachedFile, cfg.Entries)}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

// loopCache returns the cache of the loop serving w, made on first use;
// nil when caching is off.
func (s *Static) loopCache(w *Response) *fileCache {
	if s.Cache.Entries <= 0 || s.Cache.Bytes <= 0 || s.Cache.Valid <= 0 {
		return nil
	}
	l := w.st.c.Loop()
	s.cachesOnce.Do(func() {
		caches := make([]atomic.Pointer[fileCache], len(l.Engine().Loops()))
		s.caches.Store(&caches)
	})
	slot := &(*s.caches.Load())[l.ID()] // each loop stores only into its own
	c := slot.Load()
	if c == nil {
		c = newFileCache(s.Cache)
		slot.Store(c)
	}
	return c
}

// CacheStats sums the loops' cache counters.
func (s *Static) CacheStats() FileCacheStats {
	var st FileCacheStats
	caches := s.caches.Load()
	if caches == nil {
		return st
	}
	for i := range *caches {
		c := (*caches)[i].Load()
		if c == nil {
			continue
		}
		st.Hits += c.hits.Load()
		st.Revalidations += c.revalidations.Load()
		st.Misses += c.misses.Load()
		st.Evictions += c.evictions.Load()
	}
	return st
}

// lookup returns the entry for name, confirming it against the file once
// Valid has passed; nil when there is none or the file changed.
func (c *fileCache) lookup(s *Static, name []byte, now time.Time) *cachedFile {
	h := maphash.Bytes(c.seed, name)
	e := c.byHash[h]
	if e == nil || string(e.name) != string(name) {
		return nil
	}
	if now.Sub(e.checked) >= c.cfg.Valid {
		fd, err := s.open(name)
		if err != nil {
			c.remove(e)
			return nil
		}
		var fi unix.Stat_t
		err = unix.Fstat(fd, &fi)
		unix.Close(fd)
		if err != nil || fi.Mode&unix.S_IFMT != unix.S_IFREG || fileIDOf(&fi) != e.id {
			c.remove(e)
			return nil
		}
		e.checked = now
		c.revalidations.Add(1)
	}
	c.touch(e)
	c.hits.Add(1)
	return e
}

// settleTime is the longest a file must have been left unchanged before
// it is cached (Valid, when shorter).
const settleTime = time.Second

// wants says whether the regular file fi is to be cached: small enough,
// and settled (its change time is on the wall clock, as now is).
func (c *fileCache) wants(fi *unix.Stat_t, now time.Time) bool {
	return fi.Size <= MaxCachedFile && fi.Size <= c.cfg.Bytes &&
		now.Sub(time.Unix(fi.Ctim.Sec, fi.Ctim.Nsec)) >= min(c.cfg.Valid, settleTime)
}

// insert reads the open file fd of metadata fi into a new entry for name.
func (c *fileCache) insert(name []byte, fd int, fi *unix.Stat_t, now time.Time) (*cachedFile, error) {
	c.misses.Add(1)
	h := maphash.Bytes(c.seed, name)
	if old := c.byHash[h]; old != nil {
		c.remove(old) // a stale entry, or another name with the same hash
	}
	for len(c.byHash) >= c.cfg.Entries || c.bytes+fi.Size > c.cfg.Bytes {
		c.remove(c.head.prev)
	}
	e := c.spare
	c.spare = nil
	if e == nil {
		e = &cachedFile{}
	}
	if int64(cap(e.body)) < fi.Size {
		e.body = make([]byte, fi.Size)
	}
	e.body = e.body[:fi.Size]
	if err := preadFull(fd, e.body, 0); err != nil {
		c.spare = e
		return nil, err
	}
	e.hash = h
	e.name = append(e.name[:0], name...)
	e.id = fileIDOf(fi)
	e.mtime = time.Unix(fi.Mtim.Sec, 0)
	e.etag = appendETag(e.etag[:0], fi)
	e.lastMod = httpwire.AppendHTTPDate(e.lastMod[:0], e.mtime)
	e.ctype = contentType(name[:len(name)-1])
	e.checked = now
	c.byHash[h] = e
	c.bytes += fi.Size
	e.prev, e.next = &c.head, c.head.next
	e.next.prev, c.head.next = e, e
	return e, nil
}

// touch makes e the most recently used.
func (c *fileCache) touch(e *cachedFile) {
	if c.head.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &c.head, c.head.next
	e.next.prev, c.head.next = e, e
}

func (c *fileCache) remove(e *cachedFile) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	delete(c.byHash, e.hash)
	c.bytes -= int64(len(e.body))
	c.evictions.Add(1)
	c.spare = e
}

// appendETag appends nginx's ETag form: the modification time and the size
// in hex.
func appendETag(dst []byte, fi *unix.Stat_t) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, fi.Mtim.Sec, 16)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, fi.Size, 16)
	return append(dst, '"')
}
