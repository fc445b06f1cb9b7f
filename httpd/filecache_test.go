package httpd_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/httpd"
	"github.com/scalestack/scalestack/reactor"
)

// keepAliveClient sends requests one at a time on one connection, so that
// they all reach the same loop (and its cache).
type keepAliveClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAliveClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAliveClient{t: t, c: c, br: bufio.NewReader(c)}
}

// get returns the status, body and ETag of GET path.
func (k *keepAliveClient) get(path string, fields ...string) (int, string, string) {
	k.t.Helper()
	_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: a\r\n" + strings.Join(fields, "") + "\r\n"
	if _, err := k.c.Write([]byte(req)); err != nil {
		k.t.Fatal(err)
	}
	resps := readResponses(k.t, k.br, 1)
	if len(resps) != 1 {
		k.t.Fatalf("GET %s: no response", path)
	}
	return resps[0].StatusCode, bodyOf(resps[0]), resps[0].Header.Get("ETag")
}

func (k *keepAliveClient) expect(path, wantBody string) {
	k.t.Helper()
	if code, body, _ := k.get(path); code != 200 || body != wantBody {
		k.t.Fatalf("GET %s: %d %q, want 200 %q", path, code, body, wantBody)
	}
}

// replaceFile writes data beside path and renames it over path, as deploy
// tools do: a new inode under the old name.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// TestFileCacheServesFromMemoryUntilValid: with a long Valid, a cached file
// is answered from memory even after it changed in place (the cost of the
// cache, bounded by Valid), with the fields of the version cached; a file
// changed less than a second ago is not cached at all.
func TestFileCacheServesFromMemoryUntilValid(t *testing.T) {
	s := startCachingServer(t, reactor.NewEpoll, httpd.Config{}, httpd.FileCacheConfig{Entries: 16, Bytes: 1 << 20, Valid: time.Hour})
	k := dialKeepAlive(t, s.addr)
	k.expect("/hello.txt", "hello, world\n")
	if st := s.static.CacheStats(); st.Misses != 0 || st.Hits != 0 {
		t.Fatalf("a file changed under a second ago was cached: %+v", st)
	}
	time.Sleep(1100 * time.Millisecond)
	_, _, etag := k.get("/hello.txt")
	k.expect("/hello.txt", "hello, world\n")
	if st := s.static.CacheStats(); st.Misses != 1 || st.Hits != 1 {
		t.Fatalf("after two requests of a settled file: %+v, want 1 miss and 1 hit", st)
	}
	// In place, same inode: still the cached version, whole and consistent.
	if err := os.WriteFile(filepath.Join(s.root, "hello.txt"), []byte("HELLO, WORLD, AGAIN\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body, tag := k.get("/hello.txt"); code != 200 || body != "hello, world\n" || tag != etag {
		t.Fatalf("within Valid after an edit: %d %q %s, want the cached version (ETag %s)", code, body, tag, etag)
	}
	if code, _, _ := k.get("/hello.txt", "If-None-Match: "+etag+"\r\n"); code != 304 {
		t.Errorf("If-None-Match on a hit: %d, want 304", code)
	}
	if code, body, _ := k.get("/hello.txt", "Range: bytes=7-11\r\n"); code != 206 || body != "world" {
		t.Errorf("range on a hit: %d %q", code, body)
	}
	// A file written just now is served from disk, not cached.
	if err := os.WriteFile(filepath.Join(s.root, "fresh.txt"), []byte("fresh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := s.static.CacheStats()
	k.expect("/fresh.txt", "fresh\n")
	if st := s.static.CacheStats(); st.Misses != before.Misses {
		t.Errorf("a file written just now was cached: %+v", st)
	}
	// Large files are never cached.
	k.get("/big.bin")
	k.get("/big.bin")
	if st := s.static.CacheStats(); st.Misses != before.Misses || st.Hits != before.Hits {
		t.Errorf("big.bin went through the cache: %+v (before %+v)", st, before)
	}
}

// TestFileCacheRevalidates: once Valid has passed, a request checks the
// file: unchanged, the entry stays (a revalidation); changed in place,
// replaced by a rename, turned into a directory or deleted, the new state
// is served.
func TestFileCacheRevalidates(t *testing.T) {
	const valid = 150 * time.Millisecond
	s := startCachingServer(t, reactor.NewEpoll, httpd.Config{}, httpd.FileCacheConfig{Entries: 16, Bytes: 1 << 20, Valid: valid})
	k := dialKeepAlive(t, s.addr)
	hello := filepath.Join(s.root, "hello.txt")
	time.Sleep(valid)
	k.expect("/hello.txt", "hello, world\n")
	time.Sleep(valid)
	k.expect("/hello.txt", "hello, world\n")
	if st := s.static.CacheStats(); st.Misses != 1 || st.Revalidations != 1 || st.Hits != 1 {
		t.Fatalf("unchanged file after Valid: %+v, want 1 miss, then 1 hit after a revalidation", st)
	}
	steps := []struct {
		name   string
		change func()
		code   int
		body   string
	}{
		{"changed in place", func() {
			if err := os.WriteFile(hello, []byte("hello, edited\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 200, "hello, edited\n"},
		{"replaced by a rename", func() { replaceFile(t, hello, "hello, renamed\n") }, 200, "hello, renamed\n"},
		{"deleted", func() {
			if err := os.Remove(hello); err != nil {
				t.Fatal(err)
			}
		}, 404, ""},
		{"back, then made a directory", func() {
			if err := os.Mkdir(hello, 0o755); err != nil {
				t.Fatal(err)
			}
		}, 301, ""},
	}
	for _, st := range steps {
		st.change()
		time.Sleep(valid + 20*time.Millisecond)
		code, body, _ := k.get("/hello.txt")
		if code != st.code || (code == 200 && body != st.body) {
			t.Errorf("%s: %d %q, want %d %q", st.name, code, body, st.code, st.body)
		}
		// Settled again, cached again; answers stay right.
		time.Sleep(valid + 20*time.Millisecond)
		code, body, _ = k.get("/hello.txt")
		if code != st.code || (code == 200 && body != st.body) {
			t.Errorf("%s, asked again: %d %q, want %d %q", st.name, code, body, st.code, st.body)
		}
	}
	if st := s.static.CacheStats(); st.Evictions < 3 {
		t.Errorf("cache stats %+v: want the changed entries evicted", st)
	}
}

// TestFileCacheBounds: the entry and byte bounds evict the least recently
// used files, and every answer stays right.
func TestFileCacheBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache httpd.FileCacheConfig
	}{
		{"entries", httpd.FileCacheConfig{Entries: 2, Bytes: 1 << 20, Valid: time.Hour}},
		{"bytes", httpd.FileCacheConfig{Entries: 64, Bytes: 28, Valid: time.Hour}}, // two of the 13-14 byte files
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startCachingServer(t, reactor.NewEpoll, httpd.Config{}, tc.cache)
			k := dialKeepAlive(t, s.addr)
			time.Sleep(1100 * time.Millisecond)
			files := map[string]string{"/hello.txt": "hello, world\n", "/index.html": "<h1>home</h1>\n", "/sub/page.html": "<p>page</p>\n"}
			order := []string{"/hello.txt", "/index.html", "/sub/page.html", "/hello.txt", "/sub/page.html", "/index.html"}
			for range 3 {
				for _, p := range order {
					k.expect(p, files[p])
				}
			}
			st := s.static.CacheStats()
			if st.Evictions == 0 || st.Hits == 0 {
				t.Errorf("cache stats %+v: want evictions and hits", st)
			}
			t.Logf("%+v", st)
		})
	}
}
