// tests/ca/fakes.h — in-memory backends that behave like the real ones and can be told to fail.
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "ca/controller/controller.h"

namespace istioca::testing {

class FakeServiceAccounts final : public ca::ServiceAccountSource {
 public:
  void Add(const std::string& ns, const std::string& name) {
    {
      std::lock_guard<std::mutex> l(mu_);
      sas_.insert({ns, name});
    }
    if (handler_) handler_({ns, name});
  }
  void Remove(const std::string& ns, const std::string& name) {
    {
      std::lock_guard<std::mutex> l(mu_);
      sas_.erase({ns, name});
    }
    if (handler_) handler_({ns, name});
  }
  void SetHandler(std::function<void(const ca::ServiceAccountKey&)> h) override { handler_ = h; }
  Status Start() override { return OkStatus(); }
  void Stop() override {}
  bool HasSynced() const override { return true; }
  Result<std::vector<ca::ServiceAccountKey>> List() const override {
    std::lock_guard<std::mutex> l(mu_);
    return std::vector<ca::ServiceAccountKey>(sas_.begin(), sas_.end());
  }
  Result<bool> Exists(const ca::ServiceAccountKey& k) const override {
    std::lock_guard<std::mutex> l(mu_);
    return sas_.count(k) > 0;
  }

 private:
  mutable std::mutex mu_;
  std::set<ca::ServiceAccountKey> sas_;
  std::function<void(const ca::ServiceAccountKey&)> handler_;
};

// Versions are counters, as Kubernetes resourceVersions are; FailNext(code) makes the next
// mutating call (or Get, with FailNextGet) fail with that code.
class FakeSecretStore final : public ca::SecretStore {
 public:
  void SetHandler(std::function<void(const ca::ServiceAccountKey&)>) override {}
  Status Start() override { return OkStatus(); }
  void Stop() override {}
  bool HasSynced() const override { return true; }
  Result<std::vector<ca::ServiceAccountKey>> List() const override {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<ca::ServiceAccountKey> out;
    for (const auto& [k, v] : data_) out.push_back(k);
    return out;
  }
  Result<ca::WorkloadSecret> Get(const ca::ServiceAccountKey& k) const override {
    std::lock_guard<std::mutex> l(mu_);
    if (!fail_get_.empty()) {
      Code c = fail_get_.front();
      fail_get_.pop_front();
      return Status(c, "injected get failure");
    }
    auto it = data_.find(k);
    if (it == data_.end()) return NotFound("no secret");
    return it->second.Clone();
  }
  Status Create(const ca::ServiceAccountKey& k, const ca::WorkloadSecret& s) override {
    std::lock_guard<std::mutex> l(mu_);
    if (Status f = Injected(); !f.ok()) return f;
    if (data_.count(k)) return Status(Code::kAlreadyExists, "exists");
    Store(k, s.Clone());
    return OkStatus();
  }
  Status Update(const ca::ServiceAccountKey& k, const ca::WorkloadSecret& s) override {
    std::lock_guard<std::mutex> l(mu_);
    if (Status f = Injected(); !f.ok()) return f;
    auto it = data_.find(k);
    if (it == data_.end()) return NotFound("no secret");
    if (it->second.version != s.version) return Status(Code::kAborted, "conflict");
    Store(k, s.Clone());
    return OkStatus();
  }
  Status Delete(const ca::ServiceAccountKey& k) override {
    std::lock_guard<std::mutex> l(mu_);
    if (Status f = Injected(); !f.ok()) return f;
    deletes_[k.ToString()]++;
    return data_.erase(k) ? OkStatus() : NotFound("no secret");
  }

  // Test controls.
  void FailNext(Code c, int times = 1) {
    std::lock_guard<std::mutex> l(mu_);
    for (int i = 0; i < times; ++i) fail_.push_back(c);
  }
  void FailNextGet(Code c) {
    std::lock_guard<std::mutex> l(mu_);
    fail_get_.push_back(c);
  }
  // Changes a secret behind the controller's back (another writer, an operator).
  void Put(const std::string& ns, const std::string& name, ca::WorkloadSecret s) {
    std::lock_guard<std::mutex> l(mu_);
    Store({ns, name}, std::move(s));
  }
  void Erase(const std::string& ns, const std::string& name) {
    std::lock_guard<std::mutex> l(mu_);
    data_.erase({ns, name});
  }
  int Writes(const std::string& key) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = writes_.find(key);
    return it == writes_.end() ? 0 : it->second;
  }
  int Deletes(const std::string& key) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = deletes_.find(key);
    return it == deletes_.end() ? 0 : it->second;
  }
  std::optional<ca::WorkloadSecret> Peek(const std::string& ns, const std::string& name) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = data_.find({ns, name});
    if (it == data_.end()) return std::nullopt;
    return it->second.Clone();
  }
  size_t Size() const {
    std::lock_guard<std::mutex> l(mu_);
    return data_.size();
  }

 private:
  Status Injected() {
    if (fail_.empty()) return OkStatus();
    Code c = fail_.front();
    fail_.pop_front();
    return Status(c, "injected failure");
  }
  void Store(const ca::ServiceAccountKey& k, ca::WorkloadSecret s) {
    s.version = std::to_string(++version_);
    data_[k] = std::move(s);
    writes_[k.ToString()]++;
  }
  mutable std::mutex mu_;
  std::map<ca::ServiceAccountKey, ca::WorkloadSecret> data_;
  std::map<std::string, int> writes_;
  std::map<std::string, int> deletes_;
  std::deque<Code> fail_;
  mutable std::deque<Code> fail_get_;
  uint64_t version_ = 0;
};

}  // namespace istioca::testing
