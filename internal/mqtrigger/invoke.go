package mqtrigger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "isotope.dev/isotope/api/v1"
)

// maxAnswer bounds the answer body read from a function (what goes to
// respTopic); a bigger answer is a failure.
const maxAnswer = 8 << 20

// handler calls the function for one message and settles it.
type handler struct {
	cfg Config
	url string
	log *slog.Logger
}

func newHandler(cfg Config) *handler {
	t := cfg.Trigger
	return &handler{
		cfg: cfg,
		url: strings.TrimRight(cfg.RouterURL, "/") + "/fission-function/" + t.Namespace + "/" + t.Spec.FunctionReference.Name,
		log: cfg.Logger.With("trigger", t.Namespace+"/"+t.Name),
	}
}

// handle calls the function (with retries), publishes the answer or the
// failure, and acknowledges the message. When ctx ends first the
// message is left unacknowledged, for the broker to deliver again.
func (h *handler) handle(ctx context.Context, m Message) {
	spec := &h.cfg.Trigger.Spec
	res := Result{Key: m.Key}
	var body []byte
	var answer http.Header
	delay := h.cfg.RetryDelay
	for attempt := 0; attempt <= spec.MaxRetries; attempt++ {
		if attempt > 0 && !sleep(ctx, delay) {
			return
		}
		delay = min(delay*2, 5*time.Second)
		res.Attempts++
		res.Status, answer, body, res.Err = h.call(ctx, m, attempt)
		if ctx.Err() != nil {
			return
		}
		if res.Err == nil {
			break
		}
		h.log.Debug("call failed", "attempt", attempt+1, "err", res.Err)
	}
	var topic string
	var out []byte
	hdr := http.Header{}
	if res.Err == nil {
		topic, out = spec.ResponseTopic, body
		for k, vs := range answer {
			if k != "Content-Length" && k != "Date" {
				hdr[k] = vs
			}
		}
	} else {
		h.log.Warn("message failed", "attempts", res.Attempts, "err", res.Err, "errorTopic", spec.ErrorTopic)
		topic, out = spec.ErrorTopic, m.Body
		for k, vs := range m.Header {
			hdr[k] = vs
		}
		// Exact names, not canonicalised: NATS and Kafka headers are
		// case-sensitive.
		hdr[HeaderError] = []string{res.Err.Error()}
		hdr[HeaderAttempts] = []string{strconv.Itoa(res.Attempts)}
		hdr[HeaderSource] = []string{spec.Topic}
	}
	if topic != "" && !h.publish(ctx, topic, out, hdr) {
		return
	}
	if !h.ack(ctx, m) {
		return
	}
	if h.cfg.Handled != nil {
		h.cfg.Handled(res)
	}
}

// call makes one call; err is nil only for a 2xx answer.
func (h *handler) call(ctx context.Context, m Message, attempt int) (int, http.Header, []byte, error) {
	spec := &h.cfg.Trigger.Spec
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(m.Body))
	if err != nil {
		return 0, nil, nil, err
	}
	// The message's own headers first; Fission's headers win.
	for k, vs := range m.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set(HeaderTopic, spec.Topic)
	req.Header.Set(HeaderRespTopic, spec.ResponseTopic)
	req.Header.Set(HeaderErrorTopic, spec.ErrorTopic)
	req.Header.Set(HeaderTrigger, h.cfg.Trigger.Name)
	ct := spec.ContentType
	if ct == "" {
		ct = v1.DefaultMQContentType
	}
	req.Header.Set("Content-Type", ct)
	if attempt > 0 {
		req.Header.Set("X-Fission-MQTrigger-RetryCount", strconv.Itoa(attempt))
	}
	resp, err := h.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("calling function %s: %w", spec.FunctionReference.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return resp.StatusCode, nil, nil, fmt.Errorf("reading the answer of function %s: %w", spec.FunctionReference.Name, err)
	}
	if len(body) > maxAnswer {
		return resp.StatusCode, nil, nil, fmt.Errorf("function %s answered more than %d bytes", spec.FunctionReference.Name, maxAnswer)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet := strings.TrimSpace(string(body[:min(len(body), 200)]))
		return resp.StatusCode, nil, nil, fmt.Errorf("function %s answered %d: %s", spec.FunctionReference.Name, resp.StatusCode, snippet)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// publish writes to topic, retrying until it succeeds or ctx ends: the
// message is acknowledged only once its outcome is in the broker.
func (h *handler) publish(ctx context.Context, topic string, body []byte, hdr http.Header) bool {
	return h.retry(ctx, "publish to "+topic, func() error { return h.cfg.Queue.Publish(ctx, topic, body, hdr) })
}

func (h *handler) ack(ctx context.Context, m Message) bool {
	if m.Ack == nil {
		return true
	}
	return h.retry(ctx, "acknowledge", func() error { return m.Ack(ctx) })
}

func (h *handler) retry(ctx context.Context, what string, f func() error) bool {
	delay := h.cfg.RetryDelay
	for {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return false
		}
		h.log.Warn(what+" failed; retrying", "err", err, "delay", delay)
		if !sleep(ctx, delay) {
			return false
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// sleep waits d, or less when ctx ends (then it returns false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
