"""The small word lists the demo data is made of: Chinese and English names of people, places,
companies and products, and the sentences salespeople and service agents write. Data only; the
makers in names.py and the plan combine them.

Each Chinese word carries its pinyin (or an English form), so emails, domains and English
addresses can be made from the same choice.
"""

from __future__ import annotations

# ---- people --------------------------------------------------------------------------------

SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("高", "gao"), ("林", "lin"), ("罗", "luo"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"), ("彭", "peng"),
    ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"),
    ("潘", "pan"), ("蒋", "jiang"), ("蔡", "cai"), ("杜", "du"), ("叶", "ye"),
    ("程", "cheng"), ("苏", "su"), ("魏", "wei"), ("丁", "ding"), ("任", "ren"),
    ("沈", "shen"), ("姚", "yao"), ("方", "fang"), ("陆", "lu"), ("欧阳", "ouyang"),
)  # fmt: skip

GIVEN: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"),
    ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"),
    ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("涛", "tao"), ("明", "ming"),
    ("超", "chao"), ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("英", "ying"),
    ("华", "hua"), ("建", "jian"), ("国", "guo"), ("文", "wen"), ("辉", "hui"),
    ("鹏", "peng"), ("宇", "yu"), ("婷", "ting"), ("雪", "xue"), ("晨", "chen"),
    ("浩", "hao"), ("欣", "xin"), ("怡", "yi"), ("佳", "jia"), ("琳", "lin"),
    ("志", "zhi"), ("海", "hai"), ("思", "si"), ("博", "bo"), ("凯", "kai"),
    ("睿", "rui"), ("雨", "yu"), ("萱", "xuan"), ("轩", "xuan"), ("嘉", "jia"),
    ("晓", "xiao"), ("春", "chun"), ("红", "hong"), ("斌", "bin"), ("宁", "ning"),
    ("颖", "ying"), ("慧", "hui"), ("倩", "qian"), ("蕾", "lei"), ("彬", "bin"),
)  # fmt: skip

FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Susan", "Richard", "Jessica", "Thomas", "Sarah", "Daniel", "Karen",
    "Matthew", "Emily", "Andrew", "Olivia", "Mark", "Sophie", "Peter", "Grace", "Kevin", "Laura",
    "Brian", "Hannah", "Steven", "Chloe", "Paul", "Rachel", "Tom", "Anna", "Chris", "Emma",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis",
    "Walker", "Hall", "Allen", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams",
    "Nelson", "Carter", "Mitchell", "Roberts", "Turner", "Phillips", "Campbell", "Parker",
    "Evans", "Edwards", "Collins", "Stewart",
)  # fmt: skip

# (Chinese, English)
TITLES: tuple[tuple[str, str], ...] = (
    ("总经理", "General Manager"), ("副总经理", "Deputy General Manager"),
    ("采购经理", "Purchasing Manager"), ("IT经理", "IT Manager"), ("技术总监", "CTO"),
    ("财务总监", "CFO"), ("运营经理", "Operations Manager"), ("行政主管", "Office Manager"),
    ("项目经理", "Project Manager"), ("采购专员", "Buyer"), ("工程师", "Engineer"),
    ("董事长", "Chairman"), ("信息中心主任", "Head of IT"), ("市场总监", "Marketing Director"),
)  # fmt: skip

DEPARTMENTS: tuple[tuple[str, str], ...] = (
    ("总经办", "Management"), ("采购部", "Procurement"), ("信息技术部", "IT"),
    ("财务部", "Finance"), ("运营部", "Operations"), ("行政部", "Administration"),
    ("技术部", "Engineering"), ("市场部", "Marketing"),
)  # fmt: skip

FREE_MAIL = ("163.com", "126.com", "qq.com", "sina.com", "gmail.com", "outlook.com")

# ---- places: the three sales regions, their cities, districts and roads ----------------------

# region → (Chinese label, English label)
REGIONS: dict[str, tuple[str, str]] = {
    "east": ("华东大区", "East China"),
    "north": ("华北大区", "North China"),
    "south": ("华南大区", "South China"),
}

# region → cities: (Chinese, English, area code, municipality?, districts as (Chinese, English))
City = tuple[str, str, str, bool, tuple[tuple[str, str], ...]]
CITIES: dict[str, tuple[City, ...]] = {
    "east": (
        ("上海", "Shanghai", "021", True,
         (("浦东新区", "Pudong"), ("徐汇区", "Xuhui"), ("静安区", "Jing'an"))),
        ("杭州", "Hangzhou", "0571", False,
         (("西湖区", "Xihu"), ("滨江区", "Binjiang"), ("余杭区", "Yuhang"))),
        ("南京", "Nanjing", "025", False,
         (("鼓楼区", "Gulou"), ("建邺区", "Jianye"), ("江宁区", "Jiangning"))),
        ("苏州", "Suzhou", "0512", False,
         (("工业园区", "SIP"), ("姑苏区", "Gusu"), ("吴中区", "Wuzhong"))),
        ("宁波", "Ningbo", "0574", False, (("鄞州区", "Yinzhou"), ("海曙区", "Haishu"))),
        ("合肥", "Hefei", "0551", False, (("蜀山区", "Shushan"), ("包河区", "Baohe"))),
    ),
    "north": (
        ("北京", "Beijing", "010", True,
         (("海淀区", "Haidian"), ("朝阳区", "Chaoyang"), ("东城区", "Dongcheng"))),
        ("天津", "Tianjin", "022", True, (("和平区", "Heping"), ("滨海新区", "Binhai"))),
        ("济南", "Jinan", "0531", False, (("历下区", "Lixia"), ("槐荫区", "Huaiyin"))),
        ("青岛", "Qingdao", "0532", False, (("市南区", "Shinan"), ("崂山区", "Laoshan"))),
        ("石家庄", "Shijiazhuang", "0311", False,
         (("长安区", "Chang'an"), ("桥西区", "Qiaoxi"))),
        ("太原", "Taiyuan", "0351", False, (("小店区", "Xiaodian"), ("迎泽区", "Yingze"))),
    ),
    "south": (
        ("广州", "Guangzhou", "020", False,
         (("天河区", "Tianhe"), ("越秀区", "Yuexiu"), ("番禺区", "Panyu"))),
        ("深圳", "Shenzhen", "0755", False,
         (("南山区", "Nanshan"), ("福田区", "Futian"), ("宝安区", "Bao'an"))),
        ("东莞", "Dongguan", "0769", False,
         (("南城街道", "Nancheng"), ("松山湖", "Songshan Lake"))),
        ("佛山", "Foshan", "0757", False, (("禅城区", "Chancheng"), ("南海区", "Nanhai"))),
        ("厦门", "Xiamen", "0592", False, (("思明区", "Siming"), ("湖里区", "Huli"))),
        ("福州", "Fuzhou", "0591", False, (("鼓楼区", "Gulou"), ("台江区", "Taijiang"))),
    ),
}  # fmt: skip

ROADS: tuple[tuple[str, str], ...] = (
    ("人民路", "Renmin Road"), ("中山路", "Zhongshan Road"), ("解放路", "Jiefang Road"),
    ("建设路", "Jianshe Road"), ("科技路", "Keji Road"), ("创新大道", "Chuangxin Avenue"),
    ("文化路", "Wenhua Road"), ("长江路", "Changjiang Road"), ("黄河路", "Huanghe Road"),
    ("新华路", "Xinhua Road"), ("东风路", "Dongfeng Road"), ("学院路", "Xueyuan Road"),
    ("滨江大道", "Binjiang Avenue"), ("世纪大道", "Century Avenue"), ("高新路", "Gaoxin Road"),
)  # fmt: skip

# ---- companies -----------------------------------------------------------------------------

BRANDS: tuple[tuple[str, str], ...] = (
    ("明远", "mingyuan"), ("华信", "huaxin"), ("恒通", "hengtong"), ("东方", "dongfang"),
    ("宏达", "hongda"), ("天成", "tiancheng"), ("瑞丰", "ruifeng"), ("金石", "jinshi"),
    ("博雅", "boya"), ("中联", "zhonglian"), ("新创", "xinchuang"), ("鼎盛", "dingsheng"),
    ("嘉禾", "jiahe"), ("远景", "yuanjing"), ("长青", "changqing"), ("海纳", "haina"),
    ("汇通", "huitong"), ("盛世", "shengshi"), ("正和", "zhenghe"), ("启明", "qiming"),
    ("星辰", "xingchen"), ("蓝海", "lanhai"), ("智远", "zhiyuan"), ("安泰", "antai"),
    ("永信", "yongxin"), ("同创", "tongchuang"), ("广源", "guangyuan"), ("晨光", "chenguang"),
    ("九州", "jiuzhou"), ("云帆", "yunfan"), ("德润", "derun"), ("卓越", "zhuoyue"),
    ("润泽", "runze"), ("致远", "zhiyuan"), ("华锐", "huarui"), ("融创", "rongchuang"),
)  # fmt: skip

# industry (the picklist value) → (Chinese words, English words)
INDUSTRIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "it": (("科技", "信息技术", "软件", "网络科技", "数据科技"),
           ("Systems", "Software", "Technologies", "Data")),
    "manufacturing": (("机械", "精密制造", "电子", "新材料", "汽车零部件"),
                      ("Manufacturing", "Precision", "Industries", "Electronics")),
    "finance": (("投资", "融资租赁", "资产管理"), ("Capital", "Financial", "Investments")),
    "retail": (("商贸", "百货", "贸易"), ("Trading", "Retail", "Commerce")),
    "education": (("教育科技", "培训"), ("Learning", "Education")),
    "healthcare": (("医疗器械", "医药", "健康科技"), ("Medical", "Healthcare", "Life Sciences")),
    "real_estate": (("置业", "地产", "物业管理"), ("Properties", "Realty")),
    "energy": (("新能源", "能源科技", "电力"), ("Energy", "Power", "Solar")),
    "logistics": (("物流", "供应链", "国际货运"), ("Logistics", "Freight", "Supply Chain")),
    "other": (("文化传媒", "咨询", "实业"), ("Consulting", "Media", "Holdings")),
}  # fmt: skip

CN_SUFFIXES: tuple[tuple[str, int], ...] = (
    ("有限公司", 70), ("股份有限公司", 15), ("集团有限公司", 10), ("有限责任公司", 5),
)  # fmt: skip

EN_BRANDS: tuple[str, ...] = (
    "Northwind", "Bluepeak", "Evergreen", "Silverline", "Brightstar", "Summit", "Pioneer",
    "Harbor", "Redwood", "Crestview", "Oakridge", "Meridian", "Horizon", "Sterling", "Atlas",
    "Beacon", "Cobalt", "Granite", "Maple", "Orion", "Lakeside", "Westbrook", "Kingsway",
)  # fmt: skip

EN_SUFFIXES: tuple[tuple[str, int], ...] = (
    ("Ltd", 35), ("Co., Ltd.", 30), ("Inc.", 15), ("Group", 10), ("Limited", 10),
)  # fmt: skip

COMPETITORS: tuple[str, ...] = (
    "用友", "金蝶", "销售易", "纷享销客", "Salesforce", "HubSpot", "Zoho", "SAP", "Oracle",
)  # fmt: skip

# ---- what is sold ----------------------------------------------------------------------------

# (Chinese, English, typical amount in yuan)
PRODUCTS: tuple[tuple[str, str, int], ...] = (
    ("ERP系统", "ERP suite", 400_000), ("CRM系统", "CRM platform", 150_000),
    ("数据中台", "data platform", 600_000), ("MES智能制造", "MES", 500_000),
    ("云服务器", "cloud servers", 80_000), ("网络安全", "security audit", 120_000),
    ("OA办公系统", "OA system", 60_000), ("视频会议", "video conferencing", 50_000),
    ("仓储管理WMS", "WMS", 200_000), ("财务共享中心", "finance shared services", 350_000),
    ("人力资源系统", "HR system", 100_000), ("电商平台", "e-commerce platform", 250_000),
)  # fmt: skip

DEAL_KINDS: tuple[tuple[str, str], ...] = (
    ("采购项目", "purchase"), ("升级项目", "upgrade"), ("年度框架合同", "annual contract"),
    ("二期项目", "phase 2"), ("续约", "renewal"), ("试点项目", "pilot"), ("扩容", "expansion"),
)  # fmt: skip

# ---- what people write -----------------------------------------------------------------------

# activity type → subjects (Chinese, English)
ACTIVITY_SUBJECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "call": (
        ("电话沟通需求", "Call about their requirements"),
        ("电话跟进报价", "Follow-up call on the quote"),
        ("确认演示时间", "Call to fix the demo date"),
        ("电话回访", "Check-in call"),
    ),
    "visit": (
        ("上门拜访", "On-site visit"),
        ("拜访技术负责人", "Visit with the technical lead"),
        ("陪同领导拜访", "Visit with our director"),
    ),
    "meeting": (
        ("方案讲解会议", "Solution presentation"),
        ("商务谈判会议", "Commercial negotiation"),
        ("需求调研会", "Requirements workshop"),
    ),
    "email": (
        ("发送产品资料", "Sent the brochure"),
        ("发送报价单", "Sent the quotation"),
        ("邮件确认合同条款", "Confirmed contract terms by email"),
    ),
    "message": (
        ("微信沟通", "WeChat chat"),
        ("短信提醒", "Text reminder"),
    ),
    "other": (
        ("寄送样品", "Sent samples"),
        ("展会交流", "Met at the exhibition"),
    ),
}

ACTIVITY_NOTES: tuple[tuple[str, str], ...] = (
    ("客户对价格比较敏感，需要进一步沟通折扣。", "Price-sensitive; discount to be discussed."),
    ("对方希望下周安排产品演示。", "They want a product demo next week."),
    ("已发送方案，等待客户内部评估。", "Proposal sent; waiting for their internal review."),
    ("客户预算在审批中，预计月底有结果。", "Budget awaiting approval, expected by month end."),
    ("联系人不在，约定明天再联系。", "Contact was out; calling again tomorrow."),
    ("客户提出了新的集成需求。", "They raised a new integration requirement."),
    ("决策人认可方案，法务在审合同。", "Decision maker agrees; legal is reviewing."),
    ("竞争对手报价更低，需要突出服务优势。", "A competitor is cheaper; stress our service."),
)  # fmt: skip

LEAD_NOTES: tuple[tuple[str, str], ...] = (
    ("在展会上留下名片，对产品有兴趣。", "Left a card at the exhibition; interested."),
    ("官网留言咨询报价。", "Asked for a quote on the website."),
    ("老客户推荐。", "Referred by an existing customer."),
    ("预算已批，希望尽快联系。", "Budget approved; wants a call soon."),
    ("看到广告后来电咨询。", "Called after seeing an advert."),
)  # fmt: skip

# ticket type → subjects (Chinese, English)
TICKET_SUBJECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "incident": (
        ("系统无法登录", "Cannot sign in"),
        ("数据同步失败", "Data sync fails"),
        ("报表导出报错", "Report export fails"),
        ("服务器响应缓慢", "The server is slow"),
    ),
    "question": (
        ("如何批量导入客户", "How to import customers in bulk"),
        ("咨询权限设置", "Question about permissions"),
        ("发票开具咨询", "Question about invoicing"),
        ("如何修改审批流程", "How to change an approval flow"),
    ),
    "request": (
        ("申请新增用户账号", "New user accounts, please"),
        ("申请开通接口权限", "Request for API access"),
        ("申请上门培训", "Request for on-site training"),
    ),
    "complaint": (
        ("对响应速度不满意", "Unhappy with response times"),
        ("实施进度延迟", "Implementation is late"),
        ("账单金额有误", "Wrong invoice amount"),
    ),
}

RESOLUTIONS: tuple[tuple[str, str], ...] = (
    ("已远程协助客户处理，问题解决。", "Fixed it with the customer over a remote session."),
    ("修复配置后重新同步成功。", "Fixed the configuration; the sync runs again."),
    ("提供操作文档并电话讲解。", "Sent the guide and walked them through by phone."),
    ("已完成账号开通。", "Accounts created."),
    ("已向客户致歉并更正账单。", "Apologised and corrected the invoice."),
    ("升级到最新版本后恢复正常。", "Upgrading to the latest version fixed it."),
)  # fmt: skip

# an approval's answer → its comment (Chinese, English)
DECISION_COMMENTS: dict[str, tuple[str, str]] = {
    "approved": ("同意，尽快签约", "Approved; close it this month"),
    "rejected": ("折扣过高，请重新报价", "Too deep; quote again"),
}

# what a ticket's description adds to its subject (Chinese, English)
PLEASE_HELP = ("，请尽快处理。", ". Please help.")

# satisfaction score → comments (Chinese, English)
SATISFACTION: dict[int, tuple[str, str]] = {
    5: ("处理及时，非常满意", "Quick and helpful, thank you"),
    4: ("问题解决了，谢谢", "Solved, thanks"),
    3: ("解决了，但用时较长", "Solved, but it took a while"),
    2: ("响应太慢", "Too slow to respond"),
    1: ("问题反复出现，很不满意", "Keeps coming back; not happy"),
}
