package consistency

import "testing"

func TestSame(t *testing.T) {
	a := Map{{Logical: 0, Physical: 1000, Length: 100}, {Logical: 200, Physical: 5000, Length: 100}}
	b := Map{{Logical: 0, Physical: 1000, Length: 50}, {Logical: 50, Physical: 1050, Length: 50}, {Logical: 200, Physical: 7000, Length: 100}}
	for _, tc := range []struct {
		off, n uint64
		want   bool
	}{
		{0, 100, true},   // same blocks, split differently
		{100, 100, true}, // hole in both
		{150, 60, false}, // hole, then different blocks
		{250, 10, false}, // different blocks
		{300, 100, true}, // beyond both: holes
		{90, 20, true},   // extent end and hole
	} {
		if got := Same(a, b, tc.off, tc.n); got != tc.want {
			t.Errorf("Same(%d,%d) = %v, want %v", tc.off, tc.n, got, tc.want)
		}
	}
	c := Map{{Logical: 0, Physical: 1000, Length: 100, Flags: extentDelalloc}}
	if Same(c, c, 0, 10) {
		t.Error("delalloc extents must never count as unchanged")
	}
	d := Map{{Logical: 0, Physical: 1000, Length: 100}}
	if Same(d, Map{}, 0, 10) || Same(Map{}, d, 0, 10) {
		t.Error("data vs hole must differ")
	}
}
