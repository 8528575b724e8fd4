package server

import (
	"path/filepath"

	"isotope.dev/isotope/internal/mqtrigger"
	"isotope.dev/isotope/internal/router"
)

// MQOptions configure message queue triggers in `isotope server`.
type MQOptions struct {
	// NATS starts an embedded NATS server with JetStream stored in
	// <DataDir>/nats, listening on NATSAddr (--nats, --nats-addr).
	NATS     bool
	NATSAddr string
	// NATSURL is the NATS server of triggers without
	// metadata.natsServerURL when the embedded one is off (--nats-url).
	NATSURL string
	// Concurrency is the workers per trigger without
	// metadata.concurrency (--mqt-concurrency; 0 = mqtrigger's default).
	Concurrency int
}

// assembleMQ starts the embedded NATS server when asked and adds the
// trigger manager, which calls functions through the router as the
// timer does, once rtr has loaded its routes.
func (s *Server) assembleMQ(rtr *router.Router) (role, error) {
	o := s.cfg.MQ
	url := o.NATSURL
	if o.NATS {
		addr := o.NATSAddr
		if addr == "" {
			addr = "127.0.0.1:4222"
		}
		ns, err := mqtrigger.StartNATS(addr, filepath.Join(s.cfg.DataDir, "nats"))
		if err != nil {
			return role{}, err
		}
		s.closers = append(s.closers, ns.Close)
		url = ns.URL()
		s.natsURL = url
	}
	m := mqtrigger.NewManager(mqtrigger.ManagerConfig{
		Store:       s.store,
		RouterURL:   "http://" + s.routerLn.Addr().String(),
		HTTPClient:  s.timerClient(),
		Queue:       mqtrigger.Options{NATSURL: url, Concurrency: o.Concurrency},
		Logger:      s.log.With("role", "mqtrigger"),
		RouterReady: rtr.Ready(),
	})
	return role{"mqtrigger", m.Run}, nil
}

// NATSURL is the embedded NATS server's URL ("" when it is off).
func (s *Server) NATSURL() string { return s.natsURL }
