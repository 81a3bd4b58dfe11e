// What the bins of the plugins share (moshibin, kyutaistt): making their children, ghosting
// their pads and exposing a child's properties as their own.
#pragma once

#include <gst/gst.h>

// A new element of `factory` named `name`; `*ok` becomes false when the factory is missing.
GstElement* gst_kyutai_bin_make(const char* factory, const char* name, bool* ok);

// Adds to `bin` a ghost pad of `child`'s `child_pad`, named and templated after `templ`.
void gst_kyutai_bin_ghost(GstBin* bin, GstElement* child, const char* child_pad,
                          GstStaticPadTemplate* templ);

// A copy of a child's property spec, to install it on a bin with its documentation: double,
// int, uint, uint64, boolean, enum, string or boxed.
GParamSpec* gst_kyutai_clone_param_spec(GParamSpec* spec);
