package pool

import (
	"testing"
	"time"
)

// TestFIFOPeekClass: a freed backend may go to a waiter of its class only
// within classPeekDepth of the head and while the head has waited less
// than classPeekMaxWait; otherwise arrival order holds.
func TestFIFOPeekClass(t *testing.T) {
	x, y := Class{Account: 1}, Class{Account: 2}
	tests := []struct {
		name      string
		classes   []Class // queue, head first
		headAge   time.Duration
		want      int // index of the waiter returned, -1 for nil
		wantClass Class
	}{
		{"empty queue", nil, 0, -1, x},
		{"the head is of the class", []Class{x, y}, 0, 0, x},
		{"a later waiter of the class", []Class{y, y, x}, 0, 2, x},
		{"none of the class", []Class{y, y}, 0, -1, x},
		{"beyond the depth", append(make([]Class, classPeekDepth), x), 0, -1, x},
		{"at the depth's end", append(make([]Class, classPeekDepth-1), x), 0, classPeekDepth - 1, x},
		{"the head waited too long", []Class{y, x}, classPeekMaxWait, -1, x},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := NewFIFO().(*fifo)
			ws := make([]*Waiter, len(tc.classes))
			now := monoNow()
			for i, c := range tc.classes {
				if c == (Class{}) {
					c = y
				}
				ws[i] = &Waiter{Class: c, queuedAt: now}
				q.Push(ws[i])
			}
			if len(ws) > 0 {
				ws[0].queuedAt = now - int64(tc.headAge)
			}
			got := q.PeekClass(tc.wantClass)
			switch {
			case tc.want < 0 && got != nil:
				t.Fatalf("PeekClass = waiter of class %v, want nil", got.Class)
			case tc.want >= 0 && got != ws[tc.want]:
				t.Fatalf("PeekClass = %p, want waiter %d (%p)", got, tc.want, ws[tc.want])
			}
			if q.Peek() != firstOrNil(ws) {
				t.Fatal("PeekClass changed the queue")
			}
		})
	}
}

func firstOrNil(ws []*Waiter) *Waiter {
	if len(ws) == 0 {
		return nil
	}
	return ws[0]
}
