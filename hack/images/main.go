// Command images builds Isotope's container images with nothing but Go
// (no daemon, no base image): `make images` runs it.
//
//	go run ./hack/images [build] [-out bin/images] [-tag 0.1.0] [-prefix isotope]
//	                     [-images isotope,wasm-env] [-push registry/prefix] [-insecure]
//	                     [-cache dir]
//	go run ./hack/images rootfs -image wasm-env -out /rootfs
//	go run ./hack/images unpack -tarball bin/images/wasm-env.tar -out dir
//
// build writes an OCI layout (<out>/oci), one `docker save` tarball per
// image (<out>/<name>.tar) and <out>/images.json, and with -push
// uploads every image as <push>/<name>:<tag>. rootfs writes one image's
// files into a directory (owners set when run as root): the
// Dockerfiles in deploy/docker copy it onto scratch, so an image built
// with Docker has the same files as one built here. unpack writes the
// files of a `docker save` tarball's image into a directory and prints
// how it runs (images.Rootfs as JSON): tests unpack that way, outside
// their race-detector process.
//
// It lives under hack/ and not in the isotope binary: building images
// of the platform is a development task, and the platform binary should
// not carry a registry client it never uses.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"isotope.dev/isotope/internal/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cmd := "build"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "build":
		return build(ctx, args)
	case "rootfs":
		return rootfs(ctx, args)
	case "unpack":
		return unpack(args)
	default:
		return fmt.Errorf("unknown command %q (build, rootfs, unpack)", cmd)
	}
}

func build(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var o images.Options
	var list, push string
	var insecure bool
	fs.StringVar(&o.Out, "out", "", "output directory (default <repo>/bin/images)")
	fs.StringVar(&o.Tag, "tag", "", "tag of every image (default "+images.DefaultTag+", the chart's appVersion)")
	fs.StringVar(&o.Prefix, "prefix", "", "repository prefix of the local names (default "+images.DefaultPrefix+")")
	fs.StringVar(&list, "images", "", "comma-separated images to build (default all: "+strings.Join(images.Names(), ",")+")")
	fs.StringVar(&push, "push", "", "push every image to this registry prefix as <prefix>/<name>:<tag>")
	fs.BoolVar(&insecure, "insecure", false, "with -push: plain HTTP to a registry that is not on loopback")
	fs.StringVar(&o.GOARCH, "goarch", "", "architecture of the images (default this machine's)")
	fs.StringVar(&o.CacheDir, "cache", "", "cache of the binary and layers (default <user cache dir>/isotope/images)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if list != "" {
		o.Images = strings.Split(list, ",")
	}
	o.Log = os.Stdout
	res, err := images.Build(ctx, o)
	if err != nil {
		return err
	}
	if push == "" {
		return nil
	}
	_, err = images.Push(ctx, res.Images, push, images.PushOptions{Insecure: insecure, Log: os.Stdout})
	return err
}

func rootfs(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rootfs", flag.ContinueOnError)
	var image, out string
	var o images.Options
	fs.StringVar(&image, "image", "", "image whose files to write ("+strings.Join(images.Names(), ", ")+")")
	fs.StringVar(&out, "out", "", "directory to write them into (must not exist or be empty)")
	fs.StringVar(&o.Tag, "tag", "", "tag (sets the binary's version; default "+images.DefaultTag+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if image == "" || out == "" {
		return errors.New("rootfs needs -image and -out")
	}
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty", out)
	}
	o.Images, o.NoWrite, o.Log = []string{image}, true, os.Stderr
	res, err := images.Build(ctx, o)
	if err != nil {
		return err
	}
	_, err = images.Unpack(res.Images[0].V1, out, images.UnpackOptions{Chown: true})
	return err
}

func unpack(args []string) error {
	fs := flag.NewFlagSet("unpack", flag.ContinueOnError)
	var tarball, out string
	fs.StringVar(&tarball, "tarball", "", "`docker save` tarball of one image")
	fs.StringVar(&out, "out", "", "directory to write its files into (must not exist or be empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if tarball == "" || out == "" {
		return errors.New("unpack needs -tarball and -out")
	}
	r, err := images.UnpackTarball(tarball, out)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}
