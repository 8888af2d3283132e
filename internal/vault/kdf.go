package vault

import (
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/scrypt"
)

// Key-derivation functions a key file may name.
const (
	KDFArgon2id = "argon2id"
	KDFScrypt   = "scrypt" // written before format version 2; still read
)

// KDFParams turn a password into the key that wraps the master key. Alg
// is stored beside them in the key file as "kdf".
type KDFParams struct {
	Alg string `json:"-"`
	T   uint32 `json:"t,omitempty"` // argon2id passes
	M   uint32 `json:"m,omitempty"` // argon2id memory, KiB
	N   int    `json:"n,omitempty"` // scrypt cost
	R   int    `json:"r,omitempty"` // scrypt block size
	P   int    `json:"p"`           // parallelism (argon2id lanes, scrypt p)
}

// DefaultKDF is argon2id with RFC 9106's second recommended setting
// (t=3, 64 MiB, 4 lanes), within OWASP's guidance for password storage.
var DefaultKDF = KDFParams{Alg: KDFArgon2id, T: 3, M: 64 << 10, P: 4}

// TestKDF is for tests only: cheap enough to open a vault thousands of times.
// A released haven never selects it; cmd/haven maps HAVEN_TEST_KDF=fast to it
// only when built with -tags haventestkdf.
var TestKDF = KDFParams{Alg: KDFArgon2id, T: 1, M: 64, P: 1}

// The limits on parameters read from a key file. Anyone who can write to
// the storage can write a key file, so without limits a vault could make
// every client that opens it allocate and compute without bound.
const (
	MaxKDFMemory  = 1 << 30 // bytes
	MaxKDFPasses  = 10      // argon2id t
	MaxKDFThreads = 16      // argon2id lanes, scrypt p
	MaxScryptWork = 1 << 24 // scrypt N·r·p (the default of version 1 was 2^18)
)

// alg names the function; a zero Alg with scrypt's N set is scrypt, which is
// how callers spelled parameters before argon2id was the default.
func (p KDFParams) alg() string {
	if p.Alg == "" && p.N != 0 {
		return KDFScrypt
	}
	return p.Alg
}

// check refuses parameters outside the limits before anything is allocated.
func (p KDFParams) check() error {
	if p.P < 1 || p.P > MaxKDFThreads {
		return fmt.Errorf("parallelism %d: must be 1 to %d", p.P, MaxKDFThreads)
	}
	switch p.alg() {
	case KDFArgon2id:
		if p.T < 1 || p.T > MaxKDFPasses {
			return fmt.Errorf("argon2id passes %d: must be 1 to %d", p.T, MaxKDFPasses)
		}
		if p.M < 8*uint32(p.P) || uint64(p.M)<<10 > MaxKDFMemory {
			return fmt.Errorf("argon2id memory %d KiB: must be 8 KiB per lane to %d KiB", p.M, MaxKDFMemory>>10)
		}
	case KDFScrypt:
		if p.N < 2 || p.N&(p.N-1) != 0 || p.R < 1 || p.R > 64 {
			return fmt.Errorf("scrypt N=%d r=%d: N must be a power of two above 1, r 1 to 64", p.N, p.R)
		}
		if int64(p.N)*int64(p.R)*128 > MaxKDFMemory || int64(p.N)*int64(p.R)*int64(p.P) > MaxScryptWork {
			return fmt.Errorf("scrypt N=%d r=%d p=%d: more than %d MiB or N·r·p above %d", p.N, p.R, p.P, MaxKDFMemory>>20, MaxScryptWork)
		}
	default:
		return fmt.Errorf("unknown kdf %q", p.Alg)
	}
	return nil
}

// deriveKEK checks the parameters first: they may come from storage.
func deriveKEK(password string, salt []byte, p KDFParams) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.alg() == KDFScrypt {
		return scrypt.Key([]byte(password), salt, p.N, p.R, p.P, 32)
	}
	return argon2.IDKey([]byte(password), salt, p.T, p.M, uint8(p.P), 32), nil
}
