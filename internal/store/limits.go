package store

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "isotope.dev/isotope/api/v1"
)

// Limits are a server's bounds on how many instances one object may ask
// for. The API enforces them on create and update (Limited); the executor
// clamps to them too, for objects stored before a limit was lowered.
// Each instance of a process runtime is a process of the server's
// machine, started eagerly for a pool: a poolsize of 100000 is a fork
// bomb, not a configuration.
type Limits struct {
	// MaxPoolSize bounds an Environment's spec.poolsize (0: no bound).
	MaxPoolSize int
	// MaxScale bounds a newdeploy Function's MinScale and MaxScale
	// (0: no bound).
	MaxScale int
}

// Default limits of the embedded server.
const (
	DefaultMaxPoolSize = 16
	DefaultMaxScale    = 16
)

// Check reports the fields of obj past l, naming the limit and the flag
// that raises it.
func (l Limits) Check(obj v1.Object) field.ErrorList {
	var errs field.ErrorList
	over := func(p *field.Path, v, limit int, flag string) {
		if limit > 0 && v > limit {
			errs = append(errs, field.Invalid(p, v, fmt.Sprintf("must be at most %d, this server's limit (isotope server %s)", limit, flag)))
		}
	}
	switch o := obj.(type) {
	case *v1.Environment:
		over(field.NewPath("spec", "poolsize"), o.Spec.Poolsize, l.MaxPoolSize, "--max-poolsize")
	case *v1.Function:
		es := o.Spec.InvokeStrategy.ExecutionStrategy
		p := field.NewPath("spec", "InvokeStrategy", "ExecutionStrategy")
		over(p.Child("MinScale"), es.MinScale, l.MaxScale, "--max-scale")
		over(p.Child("MaxScale"), es.MaxScale, l.MaxScale, "--max-scale")
	}
	return errs
}

// Limited returns st with Create and Update refusing objects past l
// with an Invalid error (HTTP 400).
func Limited(st Store, l Limits) Store {
	return limited{st, l}
}

type limited struct {
	Store
	l Limits
}

func (s limited) check(obj v1.Object) error {
	if errs := s.l.Check(obj); len(errs) > 0 {
		return InvalidError(v1.KindOf(obj), obj.GetName(), errs)
	}
	return nil
}

func (s limited) Create(ctx context.Context, obj v1.Object) (v1.Object, error) {
	if err := s.check(obj); err != nil {
		return nil, err
	}
	return s.Store.Create(ctx, obj)
}

func (s limited) Update(ctx context.Context, obj v1.Object) (v1.Object, error) {
	if err := s.check(obj); err != nil {
		return nil, err
	}
	return s.Store.Update(ctx, obj)
}
