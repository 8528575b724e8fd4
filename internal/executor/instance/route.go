package instance

import "context"

// Route is what the router matched for a request. Runtimes that expose it
// to the function (WAGI's X_MATCHED_ROUTE and X_FULL_URL) read it from the
// request's context; process runtimes get the same facts as Fission's
// X-Fission-* headers instead.
type Route struct {
	// Pattern is the trigger's route: "/users/{id}" for a relativeurl,
	// "/static/..." for a prefix, "/..." for the internal
	// /fission-function route.
	Pattern string
	// FullURL is the URL the client asked for, as seen at the router.
	FullURL string
}

type routeKey struct{}

// WithRoute returns ctx carrying r.
func WithRoute(ctx context.Context, r Route) context.Context {
	return context.WithValue(ctx, routeKey{}, r)
}

// RouteFrom returns the route set by WithRoute, if any.
func RouteFrom(ctx context.Context) (Route, bool) {
	r, ok := ctx.Value(routeKey{}).(Route)
	return r, ok
}
