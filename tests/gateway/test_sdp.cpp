// Offer/answer of moshi-gateway (gateway/doors/sip/sdp.cpp) on Sofia-SIP's parser, without any process.
#include <gtest/gtest.h>

#include "doors/sip/sdp.h"

using namespace moshigw;

namespace {

const std::vector<std::string> kPreference = {"opus", "G722", "PCMU", "PCMA"};

std::string offer(const std::string& media, const std::string& session_extra = "") {
  return "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n" +
         session_extra + media;
}

const std::string kPcmuPcma =
    "m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

}  // namespace

TEST(Sdp, TheGatewaysPreferenceWinsOverTheCallersOrder) {
  Offer o = negotiate(offer(kPcmuPcma), kPreference);
  ASSERT_EQ(o.status, 0) << o.reason;
  EXPECT_STREQ(o.codec->name, "PCMU");
  EXPECT_EQ(o.pt, 0);
  EXPECT_EQ(o.remote_address, "192.0.2.7");
  EXPECT_EQ(o.remote_port, 4000);
  EXPECT_EQ(o.direction, kSendRecv);
  o = negotiate(offer(kPcmuPcma), {"PCMA", "PCMU"});
  ASSERT_EQ(o.status, 0) << o.reason;
  EXPECT_STREQ(o.codec->name, "PCMA");
  EXPECT_EQ(o.pt, 8);
}

TEST(Sdp, DynamicOpusAndG722) {
  const std::string media =
      "m=audio 4000 RTP/AVP 111 9 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:9 G722/8000\r\n";
  Offer o = negotiate(offer(media), kPreference);
  ASSERT_EQ(o.status, 0) << o.reason;
  EXPECT_STREQ(o.codec->name, "opus");
  EXPECT_EQ(o.pt, 111);
  const std::string answer = answer_sdp(o, "198.51.100.1", 20000, 42, 1);
  EXPECT_NE(answer.find("m=audio 20000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"),
            std::string::npos)
      << answer;
  EXPECT_NE(answer.find("c=IN IP4 198.51.100.1"), std::string::npos);
  EXPECT_NE(answer.find("a=ptime:20\r\na=sendrecv"), std::string::npos);
  o = negotiate(offer(media), {"G722"});
  ASSERT_EQ(o.status, 0) << o.reason;
  EXPECT_STREQ(o.codec->name, "G722");
  EXPECT_EQ(o.pt, 9);
  // The offered telephone-event is never answered.
  o = negotiate(offer(kPcmuPcma), kPreference);
  EXPECT_EQ(answer_sdp(o, "198.51.100.1", 20000, 42, 1).find("telephone-event"), std::string::npos);
}

TEST(Sdp, HoldDirectionsAreMirrored) {
  Offer o = negotiate(offer(kPcmuPcma + "a=sendonly\r\n"), kPreference);
  EXPECT_EQ(o.direction, kSendOnly);
  EXPECT_NE(answer_sdp(o, "198.51.100.1", 20000, 1, 2).find("a=recvonly"), std::string::npos);
  o = negotiate(offer(kPcmuPcma + "a=inactive\r\n"), kPreference);
  EXPECT_EQ(o.direction, kInactive);
  EXPECT_NE(answer_sdp(o, "198.51.100.1", 20000, 1, 2).find("a=inactive"), std::string::npos);
  o = negotiate(offer(kPcmuPcma, "a=sendonly\r\n"), kPreference);  // at session level
  EXPECT_EQ(o.direction, kSendOnly);
  // The media's own direction wins over the session's.
  o = negotiate(offer(kPcmuPcma + "a=sendrecv\r\n", "a=sendonly\r\n"), kPreference);
  EXPECT_EQ(o.direction, kSendRecv);
  // RFC 2543 hold.
  o = negotiate("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" + kPcmuPcma,
                kPreference);
  EXPECT_EQ(o.direction, kInactive);
}

TEST(Sdp, OtherStreamsAreRefusedInTheAnswer) {
  const std::string media = "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n" + kPcmuPcma +
                            "m=audio 6000 RTP/SAVP 0\r\n";
  const Offer o = negotiate(offer(media), kPreference);
  ASSERT_EQ(o.status, 0);
  ASSERT_EQ(o.lines.size(), 3u);
  const std::string answer = answer_sdp(o, "198.51.100.1", 20000, 1, 1);
  EXPECT_NE(answer.find("m=video 0 RTP/AVP 96\r\nm=audio 20000 RTP/AVP 0\r\n"), std::string::npos)
      << answer;
  EXPECT_NE(answer.find("m=audio 0 RTP/SAVP 0"), std::string::npos) << answer;
}

TEST(Sdp, BadOffersAreRejected) {
  EXPECT_EQ(negotiate("v=0\r\nm=audio x\r\n", kPreference).status, 400);
  EXPECT_EQ(negotiate("", kPreference).status, 400);
  EXPECT_EQ(negotiate(std::string("\0\1\2garbage", 10), kPreference).status, 400);
  EXPECT_EQ(
      negotiate(offer("m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"), kPreference).status,
      488);
  EXPECT_EQ(negotiate(offer("m=audio 0 RTP/AVP 0\r\n"), kPreference).status, 488);
  EXPECT_EQ(negotiate(offer("m=audio 4000 RTP/SAVP 0\r\n"), kPreference).status, 488);
  EXPECT_EQ(negotiate(offer(kPcmuPcma), {"opus"}).status, 488);
}

// RTP goes from a socket of the gateway's family to an IP literal: host names and the other
// family are refused with 488 and a reason, and the hold address 0.0.0.0 is placed (inactive).
TEST(Sdp, AddressesTheGatewayCannotReachAreRefused) {
  auto with_address = [](const std::string& c) {
    return "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=" + c + "\r\nt=0 0\r\n" + kPcmuPcma;
  };
  Offer o = negotiate(with_address("IN IP6 2001:db8::7"), kPreference);
  EXPECT_EQ(o.status, 488);
  EXPECT_NE(o.reason.find("IPv6"), std::string::npos) << o.reason;
  o = negotiate(with_address("IN IP4 pbx.example.com"), kPreference);
  EXPECT_EQ(o.status, 488);
  EXPECT_NE(o.reason.find("not an IP address"), std::string::npos) << o.reason;
  o = negotiate(with_address("IN IP4 192.0.2.7"), kPreference, /*ipv6=*/true);
  EXPECT_EQ(o.status, 488);
  o = negotiate(with_address("IN IP6 2001:db8::7"), kPreference, /*ipv6=*/true);
  EXPECT_EQ(o.status, 0) << o.reason;
  EXPECT_EQ(o.remote_address, "2001:db8::7");
  o = negotiate(with_address("IN IP4 0.0.0.0"), kPreference);
  EXPECT_EQ(o.status, 0) << o.reason;
  EXPECT_EQ(o.direction, kInactive);
}
