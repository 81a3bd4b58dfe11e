#include "gstkyutaibin.h"

GstElement* gst_kyutai_bin_make(const char* factory, const char* name, bool* ok) {
  GstElement* e = gst_element_factory_make(factory, name);
  *ok = *ok && e;
  return e;
}

void gst_kyutai_bin_ghost(GstBin* bin, GstElement* child, const char* child_pad,
                          GstStaticPadTemplate* templ) {
  g_autoptr(GstPad) target = gst_element_get_static_pad(child, child_pad);
  g_autoptr(GstPadTemplate) pad_template = gst_static_pad_template_get(templ);
  gst_element_add_pad(GST_ELEMENT(bin),
                      gst_ghost_pad_new_from_template(templ->name_template, target, pad_template));
}

// The numeric and boolean specs; nullptr for the others.
static GParamSpec* clone_value_spec(GParamSpec* spec, const char* nick, const char* blurb,
                                    GParamFlags flags) {
  if (G_IS_PARAM_SPEC_DOUBLE(spec)) {
    const GParamSpecDouble* d = G_PARAM_SPEC_DOUBLE(spec);
    return g_param_spec_double(spec->name, nick, blurb, d->minimum, d->maximum, d->default_value,
                               flags);
  }
  if (G_IS_PARAM_SPEC_INT(spec)) {
    const GParamSpecInt* i = G_PARAM_SPEC_INT(spec);
    return g_param_spec_int(spec->name, nick, blurb, i->minimum, i->maximum, i->default_value,
                            flags);
  }
  if (G_IS_PARAM_SPEC_UINT(spec)) {
    const GParamSpecUInt* u = G_PARAM_SPEC_UINT(spec);
    return g_param_spec_uint(spec->name, nick, blurb, u->minimum, u->maximum, u->default_value,
                             flags);
  }
  if (G_IS_PARAM_SPEC_UINT64(spec)) {
    const GParamSpecUInt64* u = G_PARAM_SPEC_UINT64(spec);
    return g_param_spec_uint64(spec->name, nick, blurb, u->minimum, u->maximum, u->default_value,
                               flags);
  }
  if (G_IS_PARAM_SPEC_BOOLEAN(spec))
    return g_param_spec_boolean(spec->name, nick, blurb, G_PARAM_SPEC_BOOLEAN(spec)->default_value,
                                flags);
  return nullptr;
}

GParamSpec* gst_kyutai_clone_param_spec(GParamSpec* spec) {
  const char* nick = g_param_spec_get_nick(spec);
  const char* blurb = g_param_spec_get_blurb(spec);
  const auto flags = static_cast<GParamFlags>(spec->flags | G_PARAM_STATIC_STRINGS);
  if (GParamSpec* value = clone_value_spec(spec, nick, blurb, flags)) return value;
  if (G_IS_PARAM_SPEC_ENUM(spec))
    return g_param_spec_enum(spec->name, nick, blurb, spec->value_type,
                             G_PARAM_SPEC_ENUM(spec)->default_value, flags);
  if (G_IS_PARAM_SPEC_STRING(spec))
    return g_param_spec_string(spec->name, nick, blurb, G_PARAM_SPEC_STRING(spec)->default_value,
                               flags);
  return g_param_spec_boxed(spec->name, nick, blurb, spec->value_type, flags);
}
