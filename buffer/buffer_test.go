package buffer

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

func init() { Debug = true }

func TestGetClassCapacities(t *testing.T) {
	tests := []struct {
		n       int
		wantCap int
	}{
		{0, 512},
		{1, 512},
		{512, 512},
		{513, 2048},
		{8 << 10, 8 << 10},
		{(8 << 10) + 1, 32 << 10},
		{MaxPooled, MaxPooled},
		{MaxPooled + 1, MaxPooled + 1}, // above the classes: exact, unpooled
	}
	for _, tt := range tests {
		b := Get(tt.n)
		if cap(b.B) != tt.wantCap || len(b.B) != 0 {
			t.Errorf("Get(%d): len %d cap %d, want len 0 cap %d", tt.n, len(b.B), cap(b.B), tt.wantCap)
		}
		b.Release()
	}
}

func TestReuseAndData(t *testing.T) {
	b := Get(100)
	b.B = append(b.B, "hello"...)
	b = Append(b, bytes.Repeat([]byte("x"), 3000)) // forces a larger class
	if cap(b.B) < 3005 || !strings.HasPrefix(string(b.B), "hellox") || len(b.B) != 3005 {
		t.Fatalf("Append lost data: len %d cap %d prefix %q", len(b.B), cap(b.B), b.B[:6])
	}
	same := Grow(b, 1)
	if same != b {
		t.Fatal("Grow reallocated although the buffer had room")
	}
	b.Release()
	if got := Grow(nil, 10); cap(got.B) < 10 {
		t.Fatalf("Grow(nil) cap %d", cap(got.B))
	} else {
		got.Release()
	}
}

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", want)
		}
		if !strings.Contains(r.(string), want) {
			t.Fatalf("panic %q, want it to contain %q", r, want)
		}
	}()
	f()
}

func TestMisusePanics(t *testing.T) {
	t.Run("double release", func(t *testing.T) {
		b := Get(10)
		b.Release()
		mustPanic(t, "double release", b.Release)
	})
	t.Run("double release of an unpooled buffer", func(t *testing.T) {
		b := Get(MaxPooled + 1)
		b.Release()
		mustPanic(t, "double release", b.Release)
	})
	t.Run("write after release", func(t *testing.T) {
		// sync.Pool may drop or withhold any buffer (the race detector
		// makes it do so on purpose), so check the detection on the
		// buffer itself rather than hoping Get returns it.
		b := Get(100)
		stale := b.B[:cap(b.B)]
		b.Release()
		stale[7] = 'x' // the bug under test: writing through a released slice
		mustPanic(t, "byte 7 of a 512-byte buffer was written after Release", func() { checkPoison(b) })
		stale[7] = poison // the buffer may sit in the pool: mend it for later tests
	})
}

func TestConcurrentGetRelease(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				b := Get((i * 37) % 4000)
				b.B = append(b.B, byte(g))
				if b.B[0] != byte(g) {
					t.Errorf("buffer shared between goroutines")
				}
				b.Release()
			}
		}(g)
	}
	wg.Wait()
}

func TestGetReleaseDoesNotAllocate(t *testing.T) {
	Get(1000).Release()
	if n := testing.AllocsPerRun(1000, func() { Get(1000).Release() }); n != 0 {
		t.Fatalf("Get+Release allocates %.1f times", n)
	}
}

func BenchmarkGetRelease(b *testing.B) {
	// Buffers released by this benchmark are not poisoned, and are not
	// checked when they come back.
	Debug = false
	defer func() { Debug = true }()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Get(4096).Release()
	}
}
