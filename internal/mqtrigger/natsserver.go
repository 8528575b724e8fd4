package mqtrigger

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSServer is an embedded nats-server with JetStream on a directory
// (`isotope server --nats`).
type NATSServer struct {
	s *server.Server
}

// StartNATS starts a NATS server listening on addr (port 0 = any free
// port) with JetStream storing under dir.
func StartNATS(addr, dir string) (*NATSServer, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--nats-addr %s: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("--nats-addr %s: bad port", addr)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "isotope",
		Host:       host,
		Port:       p,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("NATS server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("NATS server on %s did not start (is the address taken?)", addr)
	}
	return &NATSServer{s: s}, nil
}

// URL is where clients connect, e.g. nats://127.0.0.1:4222.
func (n *NATSServer) URL() string { return n.s.ClientURL() }

// Close shuts the server down and waits for it.
func (n *NATSServer) Close() {
	n.s.Shutdown()
	n.s.WaitForShutdown()
}
