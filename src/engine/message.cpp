#include "message.hpp"

#include <cstring>
#include <sstream>

#include "mpitrain/errors.hpp"

namespace mpitrain::detail {

const char* op_type_name(OpType t) {
  switch (t) {
    case OpType::Allreduce: return "allreduce";
    case OpType::Allgather: return "allgather";
    case OpType::Broadcast: return "broadcast";
    case OpType::Join: return "join";
  }
  return "?";
}

int64_t Request::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t Request::bytes() const { return size_t(numel()) * dtype_size(dtype); }

std::string Request::signature() const {
  std::ostringstream s;
  s << dtype_name(dtype) << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "] " << op_type_name(type);
  if (type == OpType::Allreduce) {
    s << ' ' << reduce_op_name(op);
    if (prescale != 1.0 || postscale != 1.0) s << " prescale " << prescale << " postscale " << postscale;
  }
  if (type == OpType::Broadcast) s << " root " << root;
  s << (device < 0 ? " on cpu" : " on cuda:" + std::to_string(device));
  if (!group.empty()) s << " in group '" << group << "' of " << group_size;
  return s.str();
}

bool Request::matches(const Request& o) const {
  if (type != o.type || dtype != o.dtype || op != o.op || root != o.root || prescale != o.prescale ||
      postscale != o.postscale || device != o.device || group != o.group || group_size != o.group_size)
    return false;
  if (type != OpType::Allgather) return shape == o.shape;
  return shape.size() == o.shape.size() && !shape.empty() &&
         std::equal(shape.begin() + 1, shape.end(), o.shape.begin() + 1);
}

namespace {

// Fixed-width little-endian fields and length-prefixed strings: both ends are this library, on
// one machine type (a job never mixes architectures).
class Writer {
 public:
  template <class T>
  void pod(T v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void str(const std::string& s) { pod<uint32_t>(uint32_t(s.size())); out_ += s; }
  template <class T>
  void vec(const std::vector<T>& v) {
    pod<uint32_t>(uint32_t(v.size()));
    for (const T& x : v) pod(x);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(const std::string& in) : in_(in) {}
  template <class T>
  T pod() {
    T v;
    need(sizeof v);
    std::memcpy(&v, in_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string str() {
    const uint32_t n = pod<uint32_t>();
    need(n);
    std::string s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  template <class T>
  std::vector<T> vec() {
    std::vector<T> v(pod<uint32_t>());
    for (T& x : v) x = pod<T>();
    return v;
  }
  bool at_end() const { return pos_ == in_.size(); }

 private:
  void need(size_t n) const {
    if (in_.size() - pos_ < n) throw CommError("engine: truncated coordinator message");
  }
  const std::string& in_;
  size_t pos_ = 0;
};

void put(Writer& w, const Request& r) {
  w.pod(uint8_t(r.type));
  w.str(r.name);
  w.pod(uint8_t(r.dtype));
  w.vec(r.shape);
  w.pod(uint8_t(r.op));
  w.pod(r.root);
  w.pod(r.prescale);
  w.pod(r.postscale);
  w.pod(r.device);
  w.str(r.group);
  w.pod(r.group_size);
}

Request get_request(Reader& in) {
  Request r;
  r.type = OpType(in.pod<uint8_t>());
  r.name = in.str();
  r.dtype = DType(in.pod<uint8_t>());
  r.shape = in.vec<int64_t>();
  r.op = ReduceOp(in.pod<uint8_t>());
  r.root = in.pod<int32_t>();
  r.prescale = in.pod<double>();
  r.postscale = in.pod<double>();
  r.device = in.pod<int32_t>();
  r.group = in.str();
  r.group_size = in.pod<int32_t>();
  return r;
}

}  // namespace

std::string serialize(const std::vector<Request>& rs) {
  Writer w;
  w.pod<uint32_t>(uint32_t(rs.size()));
  for (const auto& r : rs) put(w, r);
  return w.take();
}

std::vector<Request> parse_requests(const std::string& bytes) {
  Reader in(bytes);
  std::vector<Request> rs(in.pod<uint32_t>());
  for (auto& r : rs) r = get_request(in);
  return rs;
}

std::string serialize(const ResponseList& rl) {
  Writer w;
  w.pod<uint32_t>(uint32_t(rl.responses.size()));
  for (const auto& r : rl.responses) {
    w.pod<uint8_t>(r.error);
    w.str(r.message);
    put(w, r.req);
    w.vec(r.first_dims);
    w.vec(r.arrival);
  }
  w.vec(rl.joined);
  w.pod(rl.join_completed_by);
  w.str(rl.shutdown);
  return w.take();
}

ResponseList parse_response_list(const std::string& bytes) {
  Reader in(bytes);
  ResponseList rl;
  rl.responses.resize(in.pod<uint32_t>());
  for (auto& r : rl.responses) {
    r.error = in.pod<uint8_t>() != 0;
    r.message = in.str();
    r.req = get_request(in);
    r.first_dims = in.vec<int64_t>();
    r.arrival = in.vec<int32_t>();
  }
  rl.joined = in.vec<int32_t>();
  rl.join_completed_by = in.pod<int32_t>();
  rl.shutdown = in.str();
  return rl;
}

}  // namespace mpitrain::detail
