package health

import "testing"

func TestMachineAntiFlap(t *testing.T) {
	tests := []struct {
		name                string
		tolerated, required int
		results             string // s = success, f = failure
		want                string // state after each result: C, O, D
	}{
		{"first success", 1, 1, "s", "O"},
		{"failure tolerated", 1, 1, "sf", "OO"},
		{"degraded after tolerated+1", 1, 1, "sff", "OOD"},
		{"zero tolerance", 0, 1, "sf", "OD"},
		{"checking until verdict", 2, 1, "fff", "CCD"},
		{"first success after failures", 2, 1, "ffs", "CCO"},
		{"needs 3 successes", 0, 3, "sfssfsss", "ODDDDDDO"},
		{"failure resets successes", 0, 2, "fsfss", "DDDDO"},
	}
	short := map[State]byte{CheckingEndpoint: 'C', Online: 'O', Degraded: 'D'}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(tc.tolerated, tc.required)
			var got []byte
			for _, r := range tc.results {
				m.observe(r == 's')
				got = append(got, short[m.state])
			}
			if string(got) != tc.want {
				t.Fatalf("states %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRoutable(t *testing.T) {
	for s, want := range map[State]bool{CheckingEndpoint: true, Online: true, Unmonitored: true,
		Degraded: false, Disabled: false, Stopped: false} {
		if s.Routable() != want {
			t.Errorf("%v.Routable() = %v", s, !want)
		}
	}
}
