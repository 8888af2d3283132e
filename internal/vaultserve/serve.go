package vaultserve

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/haven-dr/haven/internal/tlsca"
)

// Serve answers HTTPS on ln with cert until ctx ends (tlsca.Serve).
func (s *Server) Serve(ctx context.Context, ln net.Listener, cert *tls.Certificate) error {
	return tlsca.Serve(ctx, ln, cert, s.Handler())
}
