// The console's words, zh-CN first; the English switch is remembered in this browser only.
const WORDS = {
  zh: {
    title: "社区工作台", "nav.home": "首页", "nav.queue": "我的工单队列", logout: "退出",
    "login.title": "登录", "login.staff": "员工账号", "login.phone": "手机验证码", "login.community": "社区",
    "login.username": "用户名", "login.password": "密码", "login.submit": "登录", "login.phoneNumber": "手机号",
    "login.sendCode": "发送验证码", "login.code": "验证码", "login.codeSent": "验证码已发送。",
    "home.title": "今日概况", "queue.title": "我的工单队列", "queue.empty": "队列中没有工单。",
    "filter.status": "状态", "filter.building": "楼栋", "filter.category": "类别", "filter.all": "全部",
    "col.due": "时限", "col.status": "状态", "col.category": "类别", "col.building": "楼栋", "col.description": "内容", "col.scope": "来源",
    "scope.mine": "派给我", "scope.community": "社区待接", "ticket.title": "工单详情", "ticket.actions": "可执行的操作",
    "ticket.timeline": "处理记录", "ticket.noActions": "您的角色在此状态下没有可执行的操作。", "ticket.done": "操作成功。",
    "fig.open": "未结工单", "fig.overdue": "已超时工单", "fig.mine": "派给我的", "fig.community": "社区待接",
    "nav.points": "积分奖惩", "points.title": "积分奖惩", "points.budget": "积分预算", "points.new": "奖励或扣分", "points.pending": "待第二人审批",
    "points.none": "没有待审批的奖惩。", "award.resident": "居民编号", "award.points": "积分（扣分为负数）", "award.pointsShort": "积分",
    "award.reason": "事由", "award.by": "提交人", "award.decide": "审批", "award.byMe": "我", "award.approve": "批准", "award.reject": "驳回",
    "award.pending": "超过审批额度，已提交，等待另一位社工审批。", "col.created": "提交时间",
    "budget.funded": "已拨入", "budget.granted": "已发放", "budget.clawedBack": "已收回", "budget.remaining": "余额",
    "fig.budget": "积分预算余额", "fig.pendingAwards": "待审批奖惩",
    "fig.weekOnTime": "本周按时完成率", "filter.unit": "房号", "export.tickets": "导出本月工单（CSV）", "export.sla": "导出本月管家时效汇总（CSV）",
    "fig.onTime": "本月按时完成率", "fig.rating": "本月平均评分", "fig.status": "状态：",
    overdue: "超时", left: "剩余", submit: "提交", cancelForm: "取消",
    "field.id": "编号", "field.status": "状态", "field.category": "类别", "field.priority": "优先级", "field.description": "内容",
    "field.building": "楼栋", "field.created": "提交时间", "field.due": "时限", "field.assignee": "处理人", "field.quote": "报价（元）",
    "field.followUp": "回访记录", "field.rating": "评分",
    "form.reason": "原因", "form.note": "备注", "form.amount": "金额（元）", "form.waitingOn": "等待", "form.toStaff": "接手员工编号",
    "waiting.resident": "等待住户", "waiting.parts": "等待配件",
    "refused": "服务器拒绝了请求（{status}）：{title}", "refusedRole": "您的账号（{roles}）无权使用此页面。",
    "failed": "请求失败（{status}）：{title}", "offline": "无法连接网关。", "expired": "登录已过期，请重新登录。",
    "nav.members": "成员核验", "nav.care": "互助与公益池", "nav.parking": "停车", "nav.register": "数据共享登记", "nav.decisions": "议事决策",
    "fig.hoursServed": "本月服务时长（小时）", "fig.awaiting": "待确认的服务", "fig.disputed": "有异议的服务", "fig.pointsMonth": "本月居民获得积分",
    "fig.parkingNow": "当前车位占用",
    "members.title": "成员核验", "member.id": "成员编号", "member.find": "查找", "member.birthDate": "出生日期", "member.verifiedAt": "核验时间",
    "member.verifiedBy": "核验人", "member.kinds": "身份", "member.elder": "老人", "member.volunteer": "志愿者", "member.priority": "重点空巢独居老人",
    "member.balance": "可用时长", "member.verify": "核验出生日期（须当面查验身份证）", "member.relatives": "已核验的亲属", "member.relativeId": "亲属成员编号",
    "member.relation": "关系", "member.noRelatives": "没有已核验的亲属。", "member.addRelative": "登记亲属",
    "member.awaiting": "待核验的成员（最早登记在前）", "member.enrolledAt": "登记时间", "member.noneAwaiting": "没有待核验的成员。",
    "care.title": "互助与公益池", "pool.title": "公益池", "pool.balance": "公益池余额", "pool.community": "社区账户余额", "pool.pending": "待确认（笔 · 小时）",
    "care.awaiting": "待老人确认的服务时长", "care.disputed": "有异议的服务", "care.logged": "记录时间", "care.service": "服务类型", "care.hours": "时长",
    "care.request": "互助需求", "care.timeout": "自动确认时间", "care.decide": "代为确认或提出异议", "care.reason": "异议原因", "care.resolved": "处理时间", "care.resolution": "处理结果",
    "care.confirm": "确认", "care.dispute": "提出异议", "care.reasonNeeded": "提出异议须填写原因。", "care.noneAwaiting": "没有待确认的服务时长。",
    "care.noneDisputed": "没有有异议的服务。",
    "parking.title": "停车", "parking.spots": "已核验车位", "parking.occupiedNow": "当前在场车辆", "parking.bookedNow": "当前进行中的预约",
    "parking.overstays": "超时停车", "parking.plate": "车牌", "parking.endsAt": "预约结束 / 离场时间", "parking.state": "情况", "parking.charged": "超时费（元）",
    "parking.stillParked": "预约已结束，车辆仍在场", "parking.leftLate": "超时离场，已收费", "parking.noOverstays": "没有超时停车。",
    "parking.misreads": "道闸识别异常", "parking.at": "时间", "parking.direction": "方向", "parking.reason": "原因", "parking.device": "道闸",
    "parking.rightPlate": "更正车牌", "parking.correct": "更正", "parking.noMisreads": "没有识别异常。", "parking.entry": "入场", "parking.exit": "出场",
    "register.title": "数据共享登记", "register.consumers": "数据使用方与授权", "register.name": "名称", "register.status": "状态",
    "register.registeredAt": "登记时间", "register.revokedAtCol": "撤销时间", "register.grants": "授权的数据", "register.noConsumers": "没有登记的数据使用方。",
    "register.pulls": "数据拉取记录", "register.pulledAt": "拉取时间", "register.consumer": "使用方", "register.scene": "数据", "register.range": "序号范围",
    "register.records": "条数", "register.noPulls": "没有拉取记录。", "register.active": "有效", "register.revoked": "已撤销",
    "register.grantedAt": "授权于", "register.revokedAt": "撤销于",
    "decisions.title": "议事决策", "decision.question": "议题", "decision.kind": "类型", "decision.window": "表决时间", "decision.status": "状态",
    "decision.result": "结果", "decisions.none": "没有议事决策。", "decision.owners_ordinary": "业主一般事项", "decision.owners_major": "业主重大事项",
    "decision.household_poll": "住户意见征询", "decision.draft": "草稿", "decision.open": "表决中", "decision.closed": "已结束",
    "decision.passed": "通过", "decision.rejected": "未通过", "decision.no_quorum": "未达法定人数", "decision.winner": "已决出", "decision.tie": "平票",
    "decision.new": "起草议事决策", "decision.options": "选项（意见征询用，以逗号或换行分隔）", "decision.opensAt": "开始时间（北京时间）",
    "decision.closesAt": "截止时间（北京时间）", "decision.draftIt": "起草", "decision.act": "操作", "decision.openNow": "开启表决",
    "nav.security": "安防", "fig.openAlarms": "待接警的报警", "fig.offlineDevices": "离线设备",
    "security.title": "安防", "security.waiting": "待接警的报警", "security.kind": "类型", "security.building": "楼栋", "security.raisedAt": "报警时间",
    "security.ticketCol": "工单", "security.ticket": "查看工单", "security.answer": "接警", "security.acknowledge": "接警",
    "security.noneWaiting": "没有待接警的报警。", "security.answered": "已接警或已解除的报警", "security.answeredBy": "接警人",
    "security.responseTime": "响应时间", "security.clearedAt": "解除时间", "security.noneAnswered": "没有已接警的报警。",
    "security.notAnswered": "未接警，已解除", "security.seconds": "{n} 秒", "security.minutes": "{n} 分钟",
    "security.devices": "设备状态（离线在前）", "security.state": "状态", "security.deviceName": "名称", "security.lastSeen": "最近心跳",
    "security.noDevices": "没有登记的设备。", "security.online": "在线", "security.offlineSince": "离线（自 {at}）",
    "security.visitors": "今日预约访客（按楼栋）", "security.window": "有效时间", "security.entries": "已用 / 可进入次数", "security.car": "车辆",
    "security.noVisitors": "今天没有预约访客。", "security.anyEntries": "不限", "security.withCar": "有车",
    "security.doorSearch": "门禁通行记录查询", "security.door": "门禁或道闸", "security.since": "开始时间（北京时间）",
    "security.until": "结束时间（北京时间）", "security.search": "查询", "security.at": "时间", "security.direction": "方向",
    "security.credential": "凭证", "security.pass": "访客通行证", "security.noEvents": "此时段没有通行记录。", "security.more": "更多",
  },
  en: {
    title: "Community console", "nav.home": "Home", "nav.queue": "My ticket queue", logout: "Log out",
    "login.title": "Log in", "login.staff": "Staff account", "login.phone": "Phone code", "login.community": "Community",
    "login.username": "Username", "login.password": "Password", "login.submit": "Log in", "login.phoneNumber": "Phone",
    "login.sendCode": "Send code", "login.code": "Code", "login.codeSent": "Code sent.",
    "home.title": "Today", "queue.title": "My ticket queue", "queue.empty": "No tickets in the queue.",
    "filter.status": "Status", "filter.building": "Building", "filter.category": "Category", "filter.all": "All",
    "col.due": "Due", "col.status": "Status", "col.category": "Category", "col.building": "Building", "col.description": "Description", "col.scope": "From",
    "scope.mine": "Assigned to me", "scope.community": "Community queue", "ticket.title": "Ticket", "ticket.actions": "What you may do",
    "ticket.timeline": "Timeline", "ticket.noActions": "Your role may take no action in this status.", "ticket.done": "Done.",
    "fig.open": "Open tickets", "fig.overdue": "Overdue tickets", "fig.mine": "Assigned to me", "fig.community": "Community queue",
    "nav.points": "Points", "points.title": "Points awards", "points.budget": "Points budget", "points.new": "Award or deduct", "points.pending": "Awaiting a second worker",
    "points.none": "No award awaits approval.", "award.resident": "Resident id", "award.points": "Points (negative to deduct)", "award.pointsShort": "Points",
    "award.reason": "Reason", "award.by": "By", "award.decide": "Decide", "award.byMe": "me", "award.approve": "Approve", "award.reject": "Reject",
    "award.pending": "Above the approval limit: submitted, awaiting another worker.", "col.created": "Filed",
    "budget.funded": "Funded", "budget.granted": "Granted", "budget.clawedBack": "Clawed back", "budget.remaining": "Remaining",
    "fig.budget": "Points budget left", "fig.pendingAwards": "Awards awaiting approval",
    "fig.weekOnTime": "On time this week", "filter.unit": "Unit", "export.tickets": "Export this month's tickets (CSV)", "export.sla": "Export this month's steward SLA summary (CSV)",
    "fig.onTime": "On time this month", "fig.rating": "Average rating this month", "fig.status": "Status: ",
    overdue: "overdue", left: "left", submit: "Submit", cancelForm: "Cancel",
    "field.id": "Id", "field.status": "Status", "field.category": "Category", "field.priority": "Priority", "field.description": "Description",
    "field.building": "Building", "field.created": "Filed", "field.due": "Due", "field.assignee": "Assignee", "field.quote": "Quote (yuan)",
    "field.followUp": "Follow-up", "field.rating": "Rating",
    "form.reason": "Reason", "form.note": "Note", "form.amount": "Amount (yuan)", "form.waitingOn": "Waiting on", "form.toStaff": "Staff id taking over",
    "waiting.resident": "the resident", "waiting.parts": "parts",
    "refused": "The server refused ({status}): {title}", "refusedRole": "Your account ({roles}) may not use this screen.",
    "failed": "Request failed ({status}): {title}", "offline": "Cannot reach the gateway.", "expired": "Your session ended; log in again.",
    "nav.members": "Members", "nav.care": "Care and pool", "nav.parking": "Parking", "nav.register": "Data sharing", "nav.decisions": "Decisions",
    "fig.hoursServed": "Hours served this month", "fig.awaiting": "Services awaiting confirmation", "fig.disputed": "Services in dispute", "fig.pointsMonth": "Points earned this month",
    "fig.parkingNow": "Spots occupied now",
    "members.title": "Member verification", "member.id": "Member id", "member.find": "Find", "member.birthDate": "Birth date", "member.verifiedAt": "Verified at",
    "member.verifiedBy": "Verified by", "member.kinds": "Roles", "member.elder": "elder", "member.volunteer": "volunteer", "member.priority": "priority elder (living alone)",
    "member.balance": "Hours available", "member.verify": "Verify the birth date (ID card checked in person)", "member.relatives": "Verified relatives", "member.relativeId": "Relative's member id",
    "member.relation": "Relation", "member.noRelatives": "No verified relative.", "member.addRelative": "Record relative",
    "member.awaiting": "Members awaiting verification (longest waiting first)", "member.enrolledAt": "Enrolled at", "member.noneAwaiting": "No member awaits verification.",
    "care.title": "Care and the pool", "pool.title": "Community pool", "pool.balance": "Pool balance", "pool.community": "Community account", "pool.pending": "Awaiting confirmation (count · hours)",
    "care.awaiting": "Service hours awaiting the elder's confirmation", "care.disputed": "Services in dispute", "care.logged": "Logged", "care.service": "Service", "care.hours": "Hours",
    "care.request": "Care request", "care.timeout": "Confirmed automatically at", "care.decide": "Confirm or dispute for the elder", "care.reason": "Reason for dispute", "care.resolved": "Resolved", "care.resolution": "Outcome",
    "care.confirm": "Confirm", "care.dispute": "Dispute", "care.reasonNeeded": "A dispute needs a reason.", "care.noneAwaiting": "No service awaits confirmation.",
    "care.noneDisputed": "No service in dispute.",
    "parking.title": "Parking", "parking.spots": "Verified spots", "parking.occupiedNow": "Cars parked now", "parking.bookedNow": "Bookings running now",
    "parking.overstays": "Overstays", "parking.plate": "Plate", "parking.endsAt": "Booking end / exit", "parking.state": "What happened", "parking.charged": "Overstay fee (yuan)",
    "parking.stillParked": "booking over, car still inside", "parking.leftLate": "left late, charged", "parking.noOverstays": "No overstay.",
    "parking.misreads": "Gate misreads", "parking.at": "At", "parking.direction": "Direction", "parking.reason": "Reason", "parking.device": "Gate",
    "parking.rightPlate": "Correct plate", "parking.correct": "Correct", "parking.noMisreads": "No misread.", "parking.entry": "entry", "parking.exit": "exit",
    "register.title": "City data-sharing register", "register.consumers": "Consumers and grants", "register.name": "Name", "register.status": "Status",
    "register.registeredAt": "Registered", "register.revokedAtCol": "Revoked", "register.grants": "Feeds granted", "register.noConsumers": "No consumer registered.",
    "register.pulls": "Pulls", "register.pulledAt": "Pulled at", "register.consumer": "Consumer", "register.scene": "Feed", "register.range": "Sequence range",
    "register.records": "Records", "register.noPulls": "No pull yet.", "register.active": "active", "register.revoked": "revoked",
    "register.grantedAt": "granted", "register.revokedAt": "revoked",
    "decisions.title": "Collective decisions", "decision.question": "Question", "decision.kind": "Kind", "decision.window": "Voting window", "decision.status": "Status",
    "decision.result": "Result", "decisions.none": "No decision.", "decision.owners_ordinary": "owners, ordinary", "decision.owners_major": "owners, major",
    "decision.household_poll": "household poll", "decision.draft": "draft", "decision.open": "open", "decision.closed": "closed",
    "decision.passed": "passed", "decision.rejected": "rejected", "decision.no_quorum": "no quorum", "decision.winner": "decided", "decision.tie": "tie",
    "decision.new": "Draft a decision", "decision.options": "Options (polls only; comma or line separated)", "decision.opensAt": "Opens at (Beijing time)",
    "decision.closesAt": "Closes at (Beijing time)", "decision.draftIt": "Draft", "decision.act": "Action", "decision.openNow": "Open voting",
    "nav.security": "Security", "fig.openAlarms": "Alarms awaiting an answer", "fig.offlineDevices": "Devices offline",
    "security.title": "Security", "security.waiting": "Alarms awaiting an answer", "security.kind": "Kind", "security.building": "Building", "security.raisedAt": "Raised at",
    "security.ticketCol": "Ticket", "security.ticket": "Open ticket", "security.answer": "Answer", "security.acknowledge": "Acknowledge",
    "security.noneWaiting": "No alarm awaits an answer.", "security.answered": "Alarms answered or cleared", "security.answeredBy": "Answered by",
    "security.responseTime": "Response time", "security.clearedAt": "Cleared at", "security.noneAnswered": "No alarm answered.",
    "security.notAnswered": "cleared unanswered", "security.seconds": "{n} s", "security.minutes": "{n} min",
    "security.devices": "Devices (offline first)", "security.state": "Status", "security.deviceName": "Name", "security.lastSeen": "Last heartbeat",
    "security.noDevices": "No device registered.", "security.online": "online", "security.offlineSince": "offline since {at}",
    "security.visitors": "Today's expected visitors (per building)", "security.window": "Valid", "security.entries": "Entries used / allowed", "security.car": "Car",
    "security.noVisitors": "No visitor expected today.", "security.anyEntries": "any", "security.withCar": "with a car",
    "security.doorSearch": "A door's access events", "security.door": "Door or gate", "security.since": "From (Beijing time)",
    "security.until": "Until (Beijing time)", "security.search": "Search", "security.at": "At", "security.direction": "Direction",
    "security.credential": "Credential", "security.pass": "Visitor pass", "security.noEvents": "No access event in this range.", "security.more": "More",
  },
};

const TERMS = {
  zh: {
    assigned: "已派单", queued: "待接单", accepted: "已接单", quoted: "已报价", approved: "已同意报价", in_progress: "处理中",
    paused: "暂停", completed: "待确认", confirmed: "已确认", closed: "已关闭", cancelled: "已取消",
    repair: "报修", cleaning: "保洁", complaint: "投诉", consultation: "咨询", service: "增值服务", normal: "普通", urgent: "紧急",
    accept: "接单", start: "开始处理", pause: "暂停", resume: "继续", quote: "报价", complete: "完成", follow_up: "回访",
    hand_over: "转交", reassign: "改派", close: "关闭", cancel: "取消工单", submit: "提交", escalate: "升级",
    approve_quote: "同意报价", reject_quote: "拒绝报价", confirm: "确认完成", return_work: "返工", rate: "评价", hurry: "催单",
    companionship: "陪伴", meal: "助餐", bathing: "助浴", medical_escort: "陪同就医", shopping: "代购", other: "其他",
    voided: "已作废", posted: "已入账", expired: "已过期", "no-booking": "无有效预约", "no-active-booking": "出场未匹配在场车辆",
    "alarm.fire": "火警", "alarm.smoke": "烟感报警", "alarm.door_forced": "门被强行打开", "alarm.door_held_open": "门长时间未关",
    "alarm.inactivity": "独居老人长时间无活动", "device.door": "门禁", "device.gate": "道闸", "device.camera": "摄像头", "device.smoke": "烟感",
    "device.sensor": "室内传感器", "direction.in": "进入", "direction.out": "离开", "direction.activity": "室内活动",
    "credential.card": "门禁卡", "credential.face": "人脸", "credential.pass": "访客通行证", "credential.plate": "车牌",
  },
  en: {
    in_progress: "in progress", follow_up: "follow-up", hand_over: "hand over", approve_quote: "approve quote",
    reject_quote: "reject quote", return_work: "return work", medical_escort: "medical escort",
    "no-booking": "no booking", "no-active-booking": "exit matched no car inside",
    "alarm.fire": "fire", "alarm.smoke": "smoke", "alarm.door_forced": "door forced", "alarm.door_held_open": "door held open",
    "alarm.inactivity": "no activity (elder living alone)", "device.door": "door", "device.gate": "gate", "device.camera": "camera", "device.smoke": "smoke sensor",
    "device.sensor": "in-home sensor", "direction.in": "in", "direction.out": "out", "direction.activity": "activity in the home",
    "credential.card": "card", "credential.face": "face", "credential.pass": "visitor pass", "credential.plate": "plate",
  },
};

let language = localStorage.getItem("console.lang") === "en" ? "en" : "zh";

export function lang() {
  return language;
}

export function t(key, values = {}) {
  const text = WORDS[language][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// A status, category, priority or action in the reader's language.
export function term(value) {
  if (value == null) return "";
  return TERMS[language][value] ?? String(value).replaceAll("_", " ");
}

export function translatePage() {
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  const button = document.getElementById("lang");
  button.textContent = language === "zh" ? "English" : "中文";
  button.lang = language === "zh" ? "en" : "zh-CN";
}

export function switchLanguage() {
  language = language === "zh" ? "en" : "zh";
  localStorage.setItem("console.lang", language);
  translatePage();
}
