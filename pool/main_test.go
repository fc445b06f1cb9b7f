package pool

import (
	"testing"

	"github.com/scalestack/scalestack/internal/testutil"
)

// TestMain fails the run if the tests leave goroutines or descriptors
// behind (a backend the pool lost track of, a toy server connection).
func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
