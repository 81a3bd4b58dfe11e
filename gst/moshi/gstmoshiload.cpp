#include "gstmoshiload.h"

#include "gstkyutaiload.h"

std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstKyutaiConfig& config) {
  return gst_kyutai_load_lm(element, config, "Moshi",
                            [&](const kyutai::MoshiFiles& files,
                                const kyutai::WeightCacheOptions& cache,
                                const kyutai::LoadProgress& progress) {
                              return kyutai::Moshi::load_shared(files, config.device,
                                                                config.weights, cache, progress);
                            });
}
